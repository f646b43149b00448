"""Assembly's shared names: the subsets, the tar member names, the JSON member's fields and the manifest.

The shard writer (rs5m.assemble.shards) writes them; the metafiles, the card, the audit and the
consumer loader (rs5m.loader) read them from here, without importing the writer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

from rs5m.columns import UID

PUB11 = "pub11"
RS3 = "rs3"
SUBSETS = (PUB11, RS3)

# Member-name styles: SPEC 5's names, or the common ones that `datasets`' webdataset loader and
# most training code decode by extension.
MEMBER_NAMES = {
    "rs5m": {"img_name": "img_name", "image": "img_content", "caption": "caption", "json": "json"},
    "standard": {"img_name": None, "image": None, "caption": "txt", "json": "json"},
}


@dataclass
class ShardInfo:
    path: str  # relative to the shards folder: "train/pub11-train-0000.tar"
    split: str
    samples: int
    bytes: int
    sha256: str
    first_key: str
    last_key: str


@dataclass
class Manifest:
    subset: str
    member_names: str
    target_bytes: int
    val_fraction: float
    shards: list[ShardInfo] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> split -> samples
    count: int | None = None  # shards.count: tars per split, or None for size-based

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        payload = json.loads(Path(path).read_text())
        payload["shards"] = [ShardInfo(**item) for item in payload["shards"]]
        return cls(**payload)


# The JSON member of each subset has these keys with these types in every sample, so readers that
# infer a schema from the first few samples (Hugging Face `datasets` infers it from five) meet the
# same one later: a missing text is "", lists of labels are one "|"-joined string (an empty JSON list
# would be inferred as a list of nulls), and keys a subset has no values for are absent from all of
# its samples. `geo` is JSON text: its fields differ between datasets. `matched_keywords` is never
# empty for a kept PUB11 sample (the keyword filter kept it for a match).
LIST_SEPARATOR = "|"
PROVENANCE_FIELDS = {
    PUB11: {
        "uid": "string",
        "subset": "string",
        "source": "string",
        "split": "string",
        "img_name": "string",
        "url": "string",
        "matched_keywords": "list<string>",
        "width": "int64",
        "height": "int64",
        "clip_score": "float64",
        "rs_score": "float64",
        "labels": "string",
        "geo": "string",
        "meta_caption": "string",
    },
    RS3: {
        "uid": "string",
        "subset": "string",
        "source": "string",
        "split": "string",
        "img_name": "string",
        "labels": "string",
        "geo": "string",
        "top_cap": "string",
        "ssl_cap": "string",
        "meta_caption": "string",
    },
}


PUB11_CAPTION_MODES = ("keep", "prepend")


def attach_pub11_meta(rows: list[dict], meta: str | Path | None, caption_mode: str) -> list[dict]:
    """The PUB11 rows with `meta_caption`, `labels` and `geo` of the meta-caption table (rules
    pub11_metacaption) where it has the uid; with `prepend`, the caption becomes meta-caption +
    " " + caption, as RS3 captions are built. Rows are updated in place and returned."""
    if caption_mode not in PUB11_CAPTION_MODES:
        raise ValueError(f"metacaption.pub11_caption must be one of {PUB11_CAPTION_MODES}, got {caption_mode!r}")
    if not meta:
        return rows
    by_uid = {row[UID]: row for row in pq.read_table(meta, columns=[UID, "meta_caption", "labels", "geo"]).to_pylist()}
    for row in rows:
        extra = by_uid.get(row[UID])
        if extra is None:
            continue
        row.update(meta_caption=extra["meta_caption"], labels=extra["labels"], geo=extra["geo"])
        if caption_mode == "prepend" and extra["meta_caption"]:
            row["caption"] = " ".join(
                part for part in (extra["meta_caption"], (row.get("caption") or "").strip()) if part
            )
    return rows


def pub11_img_name(row: dict) -> str:
    ext = row["member"].rsplit(".", 1)[-1] if "." in row["member"] else "jpg"
    return f"{row['source']}_{row[UID]}.{ext}"


def manifest_paths(shards_dir: str | Path, subsets: Iterable[str] = SUBSETS) -> list[Path]:
    return [Path(shards_dir) / f"{subset}.manifest.json" for subset in subsets]
