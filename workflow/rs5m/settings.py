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


def from_section(cls: type[T], section: Mapping[str, Any]) -> T:
    """An instance of the frozen dataclass `cls` from one validated config section: each field is
    the section's key of the same name; a field typed as a dataclass is built from its sub-section."""
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        value = section[field.name]
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            value = from_section(hint, value)
        values[field.name] = value
    return cls(**values)


@dataclass(frozen=True)
class MetacaptionSettings:
    """The metacaption keys both meta-caption stages read (PUB11's and RS3's, over rs5m.metacaption)."""

    seed: int | str
    season_rule: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MetacaptionSettings:
        return from_section(cls, config["metacaption"])
