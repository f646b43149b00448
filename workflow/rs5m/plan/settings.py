"""The plan's settings: what `rs5m plan` and the rule `plan` read of the config, built by both from
the validated config (`PlanSettings.from_config(config)`); field names are the schema's key names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


def rule_threads(config: Mapping[str, Any]) -> dict[str, int]:
    """Threads (or processes) of the rules whose jobs run in parallel inside, from the config."""
    return {
        "keyword_filter": config["metadata"]["threads"],
        "url_filter": config["urls"]["threads"],
        "download_part": config["download"]["processes"],
        "images_part": config["images"]["processes"],
        "image_dedup": config["dedup"]["threads"],
        "rs3_read_fmow": config["rs3"]["threads"],
        "rs3_read_bigearthnet": config["rs3"]["threads"],
        "rs3_read_millionaid": config["rs3"]["threads"],
    }


@dataclass(frozen=True)
class PlanSettings:
    """The top-level `parts`; `download.parts_per_host`, `per_host_rate`, `per_host_burst`,
    `politeness`, `min_rate`, `per_host_rate_max` (the crawl's bound); the threads of the rules that
    run in parallel inside (`rule_threads`, for the jobs' wall time)."""

    parts: int
    parts_per_host: int
    per_host_rate: float
    per_host_burst: float
    politeness: str
    min_rate: float
    per_host_rate_max: float
    threads: dict[str, int]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlanSettings:
        download = config["download"]
        keys = ("parts_per_host", "per_host_rate", "per_host_burst", "politeness", "min_rate", "per_host_rate_max")
        return cls(parts=config["parts"], **{key: download[key] for key in keys}, threads=rule_threads(config))

    def as_params(self) -> dict[str, Any]:
        """The fields as a plain dict, for the rule's params (Snakemake compares params by their repr)."""
        return asdict(self)
