"""Decontamination's settings: the `decontamination` config section, plus the scoring model of the
`outliers` section that embeds the eval and RS3 images as it embedded PUB11's.

Built once from the validated config (`DecontaminationSettings.from_config(config)`) by the rules'
adapters, the tests and the benchmarks alike; field names are the schema's key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rs5m.settings import ClipModel, from_section


@dataclass(frozen=True)
class Action:
    pub11: str
    rs3: str


@dataclass(frozen=True)
class Phash:
    radius: int


@dataclass(frozen=True)
class Embedding:
    enabled: bool
    threshold: float


@dataclass(frozen=True)
class Confirm:
    size: int
    threshold: float


@dataclass(frozen=True)
class ScoringModel:
    """The part of the `outliers` section decontamination reads: the model that scored PUB11."""

    clip: ClipModel
    device: str
    precision: str


@dataclass(frozen=True)
class FeatureSettings:
    """What the embedding jobs read (`decontamination_eval`, `decontamination_rs3_features`, GPU):
    their rules pass only these keys (`rs5m.settings.section_for`), so a change of a matching
    threshold or action does not re-embed."""

    batch_size: int
    outliers: ScoringModel  # config["outliers"], read under its own name

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureSettings:
        return from_section(cls, config["decontamination"], outliers=config["outliers"])


@dataclass(frozen=True)
class DecontaminationSettings:
    action: Action
    phash: Phash
    embedding: Embedding
    confirm: Confirm
    batch_size: int
    outliers: ScoringModel  # config["outliers"], read under its own name

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DecontaminationSettings:
        return from_section(cls, config["decontamination"], outliers=config["outliers"])

    def embedding_threshold(self) -> float | None:
        """The cosine a candidate pair needs, or None with the embedding matcher off."""
        return self.embedding.threshold if self.embedding.enabled else None
