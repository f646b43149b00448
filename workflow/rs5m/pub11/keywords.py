"""PUB11 stage 1: the keyword patterns and how they match.

Reads the pattern file (config/keywords.txt); builds the RE2 expressions DuckDB runs.
"""

from __future__ import annotations

import re
from pathlib import Path

# RE2 metacharacters; every other character of a pattern stands for itself.
_RE2_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def load_patterns(path: str | Path) -> list[str]:
    """Patterns one a line; blank lines and lines starting with '#' are skipped; order kept."""
    patterns: list[str] = []
    for line_number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.lower() in (p.lower() for p in patterns):
            raise ValueError(f"{path}:{line_number}: pattern {pattern!r} is listed twice")
        patterns.append(pattern)
    if not patterns:
        raise ValueError(f"{path}: no keyword patterns")
    return patterns


def re2_escape(pattern: str) -> str:
    return _RE2_SPECIAL.sub(r"\\\1", pattern)


def any_pattern_regex(patterns: list[str]) -> str:
    """One case-insensitive alternation: RE2 matches it in a single pass over the text."""
    return "(?i)(?:" + "|".join(re2_escape(p) for p in patterns) + ")"


def single_pattern_regexes(patterns: list[str]) -> list[str]:
    """One case-insensitive expression per pattern, to record which ones matched."""
    return ["(?i)" + re2_escape(p) for p in patterns]


def matched_patterns(text: str | None, patterns: list[str]) -> list[str]:
    """Reference matcher in Python (same semantics as the DuckDB path): case-folded substrings."""
    if not text:
        return []
    folded = text.casefold()
    return [p for p in patterns if p.casefold() in folded]
