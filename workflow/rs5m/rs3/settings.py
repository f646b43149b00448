"""RS3's settings: the `caption` config section as the captioning stage reads it.

Built once from the validated config (`CaptionSettings.from_config(config)`) by the rule's
adapter, the tests and the benchmarks alike; field names are the schema's key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rs5m.settings import from_section


@dataclass(frozen=True)
class Blip2:
    model: str
    lora: str | None
    dtype: str


@dataclass(frozen=True)
class CaptionClip:
    model: str
    pretrained: str | None
    keep: int


@dataclass(frozen=True)
class Rotations:
    count: int
    step_degrees: float
    model: str


@dataclass(frozen=True)
class CaptionSettings:
    device: str
    batch_size: int
    reduced_decode: bool
    seed: int | str
    blip2: Blip2
    num_candidates: int
    top_k: int
    top_p: float
    max_length: int
    clip_a: CaptionClip
    clip_b: CaptionClip
    rotations: Rotations

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CaptionSettings:
        return from_section(cls, config["caption"])
