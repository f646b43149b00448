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
NATIVE = "native"  # the native columns of a row as one JSON object (URL filter onward)
TAR = "tar"
MEMBER = "member"
PHASH = "phash"
META_CAPTION = "meta_caption"
LABELS = "labels"
GEO = "geo"
DATASET = "dataset"  # RS3: the dataset a row comes from
IMG_NAME = "img_name"
IMAGE_PATH = "image_path"

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


def make_uid(source: str, key: str, repeat: int = 0, file: str = "") -> str:
    """Stable sample id: BLAKE2b-64 of the source, the input file's name (PUB11), the URL (or an
    RS3 relative path) and a repeat index.

    A web crawl repeats URLs across its files (LAION-2B's parts do), so PUB11 ids name the file
    too, and the n-th copy of a URL inside one file gets repeat index n: every input row keeps
    its own id whatever the chunking. RS3 ids (no file) hash the dataset and the path alone.
    """
    fields = [source, file, key] if file else [source, key]
    if repeat:
        fields.append(str(repeat))
    return hashlib.blake2b("\x1f".join(fields).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def uid_bucket(uid: str, buckets: int) -> int:
    """The part a uid falls in: its leading 32 bits modulo the number of parts."""
    return int(uid[:8], 16) % buckets
