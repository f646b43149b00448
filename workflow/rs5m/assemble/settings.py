"""Assembly's settings: the config sections the shard, metafile, statistics, card and audit rules read.

Each class holds the sections one rule reads, under their own names (`settings.shards.count`,
`settings.split.val_fraction`), so a rule's params are exactly those sections. Built from the
validated config (`ShardSettings.from_config(config)`) by the adapters, the tests and the
benchmarks alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rs5m.settings import from_section


@dataclass(frozen=True)
class Split:
    val_fraction: float


@dataclass(frozen=True)
class Shards:
    target_bytes: int
    count: int | None
    member_names: str


@dataclass(frozen=True)
class Metacaption:
    """The metacaption key assembly reads: what a PUB11 sample's caption becomes."""

    pub11_caption: str


@dataclass(frozen=True)
class ShardSettings:
    split: Split
    shards: Shards
    metacaption: Metacaption

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ShardSettings:
        return from_section(cls, config)


@dataclass(frozen=True)
class MetafileSettings:
    split: Split
    metacaption: Metacaption

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetafileSettings:
        return from_section(cls, config)


@dataclass(frozen=True)
class StatsSettings:
    split: Split

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StatsSettings:
        return from_section(cls, config)


@dataclass(frozen=True)
class Card:
    name: str
    description: str
    license: str
    url: str
    version: str
    validate: bool


@dataclass(frozen=True)
class CardSettings:
    card: Card

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CardSettings:
        return from_section(cls, config)


@dataclass(frozen=True)
class Audit:
    stage_order: list[str]
    verify_images: bool


@dataclass(frozen=True)
class AuditSettings:
    audit: Audit

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AuditSettings:
        return from_section(cls, config)
