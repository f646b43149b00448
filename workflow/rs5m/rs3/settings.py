"""RS3's settings: the `caption` section as the captioning stage reads it, and the `rs3` sections
as its readers read them.

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


@dataclass(frozen=True)
class FmowSettings:
    """What the fMoW reader reads of `rs3.fmow` (its `root` is the rule's input)."""

    split: str
    variants: list[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FmowSettings:
        return from_section(cls, config["rs3"]["fmow"])


@dataclass(frozen=True)
class BigEarthNetSettings:
    """What the BigEarthNet reader reads of `rs3.bigearthnet` (its `roots` are the rule's inputs)."""

    split: str
    version: str
    reflectance_clip: list[float]
    jpeg_quality: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BigEarthNetSettings:
        return from_section(cls, config["rs3"]["bigearthnet"])


@dataclass(frozen=True)
class MillionAidSettings:
    """What the MillionAID reader reads of `rs3.millionaid` (its `root` is the rule's input)."""

    split: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MillionAidSettings:
        return from_section(cls, config["rs3"]["millionaid"])


@dataclass(frozen=True)
class ArchiveSettings:
    """One archive entry of `rs3.datasets` as the generic reader reads it (its `name` is the rule's
    wildcard, its `root` the rule's input); built from the entry itself (`from_entry`)."""

    format: str
    table: str | None
    bands: list[int] | None
    reflectance_clip: list[float] | None
    jpeg_quality: int

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ArchiveSettings:
        return from_section(cls, entry)
