"""The configured defaults (config/schema.yaml) for benchmarks that call library functions directly.

Library functions take config values as required arguments; a benchmark measures the stage as
configured by default unless it says otherwise, so it reads those values here.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

from snakemake.utils import validate

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


@cache
def _defaults() -> dict:
    config: dict = {}
    validate(config, str(SCHEMA))  # fills every default, nested ones too
    return config


def configured(*section: str):
    """A copy of the default of a config section or key, e.g. configured("shards", "member_names")."""
    node = _defaults()
    for key in section:
        node = node[key]
    return copy.deepcopy(node)


def shard_options() -> dict:
    """write_subset_shards' config arguments as the shards rule passes them."""
    return {
        "member_names": configured("shards", "member_names"),
        "pub11_caption": configured("metacaption", "pub11_caption"),
        "count": configured("shards", "count"),
    }
