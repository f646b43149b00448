"""The configuration's defaults: config/schema.yaml with every default filled in, as the workflow's
`validate` fills them.

For code that calls library functions outside the workflow (tests, benchmarks): they build a
stage's settings from `config(...)` with the builder the rule's adapter uses
(`ShardSettings.from_config(config({"shards": {"count": 2}}))`), rather than restating a default.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


@cache
def _filled() -> dict:
    from snakemake.utils import validate

    config: dict = {}
    validate(config, str(SCHEMA))  # fills every default, nested ones too
    return config


def defaults(*section: str) -> Any:
    """A copy of the default of a config section or key, e.g. defaults("caption", "rotations")."""
    node = _filled()
    for key in section:
        node = node[key]
    return copy.deepcopy(node)


def config(overrides: dict | None = None) -> dict:
    """The config `validate` makes of a config file holding `overrides` (nested like config.yaml):
    validated, every key it leaves out filled with its schema default, as the workflow does, e.g.
    config({"split": {"val_fraction": 0.2}})."""
    from snakemake.utils import validate

    filled = copy.deepcopy(overrides or {})
    validate(filled, str(SCHEMA))
    return filled
