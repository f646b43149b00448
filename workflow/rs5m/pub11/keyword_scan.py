"""PUB11 stage 1 (keyword filter): a multi-literal scan of a whole Arrow string column in one call.

Finds the rows of an Arrow string array that may match a keyword pattern, with one Hyperscan call
over the array's values buffer (all rows back to back) instead of one regex call per row or per run
of rows. A match is mapped to its row through the offsets buffer; a match that starts in one row
and ends in the next is discarded.

Semantics. The keyword query (rs5m.pub11.keyword_filter) matches `(?i)pattern` with RE2: simple Unicode case
folding, character by character. For ASCII patterns that is ASCII case-insensitivity plus two
non-ASCII characters that fold to ASCII letters: KELVIN SIGN (U+212A, folds to k) and LATIN SMALL
LETTER LONG S (U+017F, folds to s); 'İ' (U+0130) and 'ı' (U+0131) do not fold to 'i' in RE2
(tests/test_keyword_scan.py derives this from RE2 itself). Hyperscan's caseless literals give the
ASCII part; rows holding either of the two characters' UTF-8 bytes are returned as candidates too.
The result is a superset of the matching rows: the classification query still decides each
candidate row with RE2, so the kept rows and matched patterns are the query's by construction.

Patterns with a non-ASCII character are not handled here (`LiteralScanner.supports` is False):
the caller falls back to RE2.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

try:  # the scan's engine; without it rs5m.pub11.keyword_filter keeps its RE2 pre-selection
    import hyperscan
except ImportError:  # pragma: no cover - hyperscan is a pinned dependency
    hyperscan = None

# UTF-8 of the characters outside ASCII that RE2's (?i) folds onto ASCII letters.
FOLDS_TO_ASCII = {"\u212a": "k", "\u017f": "s"}


class LiteralScanner:
    """Rows of Arrow string arrays that contain one of `patterns` (ASCII, case-insensitive).

    `matching_rows` may run on several threads at once (each gets its own Hyperscan scratch)."""

    def __init__(self, patterns: list[str]):
        if not self.supports(patterns):
            raise ValueError("LiteralScanner needs hyperscan and ASCII patterns without line breaks")
        literals = [p.encode("ascii") for p in patterns]
        # The fold characters are literals too: a row holding one is a candidate, whatever follows.
        literals += [c.encode("utf-8") for c in FOLDS_TO_ASCII]
        self.lengths = np.array([len(p) for p in literals], np.int64)
        self.database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.database.compile(
            expressions=literals,
            ids=list(range(len(literals))),
            elements=len(literals),
            flags=[hyperscan.HS_FLAG_CASELESS] * len(patterns) + [0] * len(FOLDS_TO_ASCII),
            literal=True,
        )
        self.scratch = hyperscan.Scratch(self.database)
        self._local = threading.local()  # a scan needs scratch space of its own thread

    def _scratch(self):
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self.scratch.clone()
        return scratch

    @staticmethod
    def supports(patterns: list[str]) -> bool:
        return (
            hyperscan is not None
            and bool(patterns)
            and all(p and p.isascii() and "\n" not in p and "\r" not in p for p in patterns)
        )

    def matching_rows(self, strings: pa.Array) -> np.ndarray:
        """Boolean mask: True where a row's text contains a pattern (or a fold character)."""
        if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
            strings = strings.cast(pa.large_string())
        mask = np.zeros(len(strings), bool)
        values = strings.buffers()[2]
        if len(strings) == 0 or values is None or values.size == 0:
            return mask
        width = np.int32 if pa.types.is_string(strings.type) else np.int64
        offsets = np.frombuffer(strings.buffers()[1], width)[strings.offset : strings.offset + len(strings) + 1]
        begin, end = int(offsets[0]), int(offsets[-1])
        if end <= begin:
            return mask
        ids: list[int] = []
        ends: list[int] = []

        def on_match(pattern_id: int, _start: int, stop: int, _flags: int, _context) -> None:
            ids.append(pattern_id)
            ends.append(stop)

        self.database.scan(memoryview(values)[begin:end], match_event_handler=on_match, scratch=self._scratch())
        if not ends:
            return mask
        stop = np.array(ends, np.int64) + begin
        start = stop - self.lengths[np.array(ids, np.int64)]
        # Row of the match's last byte; the match counts when it starts inside that row too.
        row = np.searchsorted(offsets, stop, side="left") - 1
        inside = start >= offsets[row]
        mask[row[inside]] = True
        return mask
