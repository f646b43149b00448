"""Evaluation's settings: the `evaluation` config section as `train_clip` and `evaluate` read it.

Built once from the validated config (`TrainSettings.from_config(config)`, ...) by the rules'
adapters, the tests and the benchmarks alike; field names are the schema's key names. Both rules
run on a GPU, so each class holds only what its code reads and the rules pass the section projected
onto it (`rs5m.settings.section_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rs5m.settings import from_section


@dataclass(frozen=True)
class Train:
    """evaluation.train without `enabled` (the DAG's) and `workers` (the rule's threads)."""

    samples: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_samples: int
    shuffle: int
    checkpoint_every: int
    seed: int
    gpus: int


@dataclass(frozen=True)
class BaseModel:
    """The model `train_clip` fine-tunes: evaluation.models[evaluation.train.base]."""

    model: str
    pretrained: str | None


@dataclass(frozen=True)
class TrainSettings:
    train: Train
    base: BaseModel  # evaluation.models[train.base], read under the key that names it
    device: str
    precision: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainSettings:
        evaluation = config["evaluation"]
        return from_section(cls, evaluation, base=evaluation["models"][evaluation["train"]["base"]])


@dataclass(frozen=True)
class EvaluateSettings:
    """What `evaluate` reads besides the benchmark and the model of its job (the rule's wildcards)."""

    batch_size: int
    device: str
    precision: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EvaluateSettings:
        return from_section(cls, config["evaluation"])


@dataclass(frozen=True)
class TableTrain:
    base: str


@dataclass(frozen=True)
class TableSettings:
    """What the results table reads: the model its deltas are taken to (`evaluation.train.base`)."""

    train: TableTrain

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TableSettings:
        return from_section(cls, config["evaluation"])
