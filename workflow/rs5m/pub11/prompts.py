"""Outlier stage, text side: the prompts whose mean CLIP embedding defines "a remote sensing image".

Builds the 33 prompts of SPEC 2.5 (11 modifiers x 3 nouns, in the paper's order) from the modifier
and noun lists of config (`outliers.prompts`), where their defaults live.
"""

from __future__ import annotations

from typing import Iterable

_VOWELS = set("aeiou")


def indefinite_article(phrase: str) -> str:
    """'an' before a vowel letter, else 'a'.

    Spelling, not sound, decides: every word in the prompt lists ("aerial", "image", "jpeg",
    "low", ...) is pronounced as it is spelled at its first letter, so no exception table is needed.
    """
    phrase = phrase.strip()
    return "an" if phrase and phrase[0].lower() in _VOWELS else "a"


def build_prompts(modifiers: Iterable[str], nouns: Iterable[str]) -> list[str]:
    """Every modifier with every noun as "a/an <modifier> <noun>.", modifiers outer, nouns inner.

    An empty modifier gives "a remote sensing image.". Duplicates mean a config error (the mean
    embedding would silently weight one prompt twice), so they raise.
    """
    modifiers = [" ".join(m.split()) for m in modifiers]
    nouns = [" ".join(n.split()) for n in nouns]
    if not nouns or any(not n for n in nouns):
        raise ValueError(f"prompt nouns must be non-empty strings, got {nouns!r}")
    prompts = []
    for modifier in modifiers:
        for noun in nouns:
            phrase = f"{modifier} {noun}" if modifier else noun
            prompts.append(f"{indefinite_article(phrase)} {phrase}.")
    duplicates = sorted({p for p in prompts if prompts.count(p) > 1})
    if duplicates:
        raise ValueError(f"prompt lists give duplicate prompts: {duplicates}")
    return prompts
