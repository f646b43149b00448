"""The configuration's defaults: config/schema.yaml with every default filled in, as the workflow's
`validate` fills them.

For code that calls library functions outside the workflow (tests, benchmarks): library functions
take config values as required arguments, and the configured default is read here rather than
restated.
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


def shard_options() -> dict[str, Any]:
    """write_subset_shards' config arguments with their defaults, as the shards rule passes them."""
    return {
        "member_names": defaults("shards", "member_names"),
        "pub11_caption": defaults("metacaption", "pub11_caption"),
        "count": defaults("shards", "count"),
    }
