"""Column names shared by every stage, and the sample id.

Names are defined once here; stages import them instead of spelling strings again.
"""
from __future__ import annotations

import hashlib

UID = "uid"
SOURCE = "source"
URL = "url"
CAPTION = "caption"
CAPTIONS = "captions"
MATCHED_KEYWORDS = "matched_keywords"
WIDTH = "width"
HEIGHT = "height"
NATIVE_PREFIX = "src_"

# The eleven PUB11 sources, in the order of SPEC 2.2 (also the funnel's row order).
PUB11_SOURCES = (
    "laion2b",
    "coyo700m",
    "laioncoco",
    "laion400m",
    "wit",
    "yfcc15m",
    "cc12m",
    "redcaps",
    "cc3m",
    "sbu",
    "vg",
)

UID_HEX_DIGITS = 16


def make_uid(source: str, key: str, repeat: int = 0) -> str:
    """Stable sample id: BLAKE2b-64 of the source, its URL (or relative path) and a repeat index.

    The repeat index separates the n-th copy of the same URL inside one input file, so every
    input row keeps its own id; the first copy (repeat 0) hashes source and URL alone.
    """
    payload = f"{source}\x1f{key}" if repeat == 0 else f"{source}\x1f{key}\x1f{repeat}"
    return hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def uid_bucket(uid: str, buckets: int) -> int:
    """The part a uid falls in: its leading 32 bits modulo the number of parts."""
    return int(uid[:8], 16) % buckets
