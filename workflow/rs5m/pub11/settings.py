"""PUB11's settings: the config sections of its stages after the download, as the stages read them
(`metadata`, `images`, `dedup`, `outliers`).

Built once from the validated config (`OutlierSettings.from_config(config)`, ...) by the rules'
adapters, the tests and the benchmarks alike; field names are the schema's key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rs5m.settings import ClipModel, from_section


@dataclass(frozen=True)
class Prompts:
    modifiers: list[str]
    nouns: list[str]


@dataclass(frozen=True)
class Detector:
    """outliers.detector without its folders and workers: the rule's inputs and threads carry those."""

    model: str
    epochs: int
    imgsz: int
    batch: int
    seed: int
    max_per_class: int | None
    amp: bool
    train_args: dict


@dataclass(frozen=True)
class ScoringSettings:
    """What `score_part` reads of `outliers` (GPU; its rule passes only these keys, see
    `rs5m.settings.section_for`, so a change of e.g. `qa_levels` does not rescore)."""

    clip: ClipModel
    prompts: Prompts
    batch_size: int
    reduced_decode: bool
    device: str
    precision: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScoringSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class DetectorSettings:
    """What `train_rs_detector` reads of `outliers` (GPU; its rule passes only these keys)."""

    detector: Detector
    device: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DetectorSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class ThresholdSettings:
    """What the joint threshold reads of `outliers` (its rule passes only these keys: everything
    after the threshold reruns when its output changes)."""

    clip_top_percent: float
    rs_top_percent: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ThresholdSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class OutlierSettings:
    """What the QA sheet reads of `outliers`: the threshold's keys and its grid's levels."""

    clip_top_percent: float
    rs_top_percent: float
    qa_levels: list[float]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutlierSettings:
        return from_section(cls, config["outliers"])


@dataclass(frozen=True)
class ImageSettings:
    max_pixels: int
    min_side: int
    phash_exact: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImageSettings:
        return from_section(cls, config["images"])


@dataclass(frozen=True)
class DedupConfirm:
    size: int
    threshold: float


@dataclass(frozen=True)
class DedupSettings:
    phash_radius: int
    bands: int
    confirm: DedupConfirm

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DedupSettings:
        return from_section(cls, config["dedup"])


@dataclass(frozen=True)
class MetadataSettings:
    """The metadata keys of the keyword filter (its threads are the rule's)."""

    max_caption_bytes: int
    on_bad_file: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetadataSettings:
        return from_section(cls, config["metadata"])
