"""Config sections as frozen dataclasses: the one way configuration reaches a stage's code.

Each stage package declares its settings in `<package>/settings.py`, a frozen dataclass per config
section whose field names are the schema's key names; `from_section` fills one from the validated
config (every default already filled in by `validate`), nested sections as nested dataclasses.
A field the section lacks is a KeyError: a field cannot be renamed on its way from the schema.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ClipModel:
    """An open_clip model as the config names it (`outliers.clip`; decontamination embeds with it too)."""

    model: str
    pretrained: str | None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_section(cls: type[T], section: Mapping[str, Any], **sections: Any) -> T:
    """An instance of the frozen dataclass `cls` from one validated config section: each field is
    the section's key of the same name; a field typed as a dataclass is built from its sub-section.
    `sections` names the fields read from another section under that section's name
    (`outliers=config["outliers"]`)."""
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        value = sections[field.name] if field.name in sections else section[field.name]
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            value = from_section(hint, value)
        values[field.name] = value
    return cls(**values)


class _Reads:
    """A config (or one of its sections) that records the keys read from it; not a Mapping, so a
    `from_config` that unpacks a whole section (`{**section}`) fails here instead of reading all."""

    def __init__(self, data: Any):
        self._data = data
        self._read: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._read:
            value = self._data[key]
            self._read[key] = _Reads(value) if isinstance(value, Mapping) else value
        return self._read[key]

    def projected(self) -> Any:
        """What was read: a sub-section read key by key is projected in turn, one taken whole
        (a `dict` field such as `outliers.detector.train_args`) stays whole."""
        if not self._read:
            return self._data
        return {key: value.projected() if isinstance(value, _Reads) else value for key, value in self._read.items()}


def section_for(cls: type, config: Mapping[str, Any], name: str) -> Any:
    """The part of the config section `name` that `cls.from_config(config)` reads, recursively.

    A rule passes this as its param instead of the whole section (`params: outliers=section_for(
    ScoringSettings, config, "outliers")`), so Snakemake's params rerun trigger fires only when a key
    the rule's settings read changes, not any key of the section. The adapter's
    `cls.from_config(snakemake.params)` builds the same object from it as from the whole config."""
    reads = _Reads(config)
    cls.from_config(reads)
    if name not in reads._read:
        raise KeyError(f"{cls.__name__}.from_config reads no config[{name!r}]")
    return reads[name].projected()


@dataclass(frozen=True)
class MetacaptionSettings:
    """The metacaption keys both meta-caption stages read (PUB11's and RS3's, over rs5m.metacaption)."""

    seed: int | str
    season_rule: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetacaptionSettings:
        return from_section(cls, config["metacaption"])
