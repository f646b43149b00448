"""What the RS3 readers share (SPEC 3): the reader table's schema, one job's ledger, the band composite.

Every reader (rs3_read_fmow, rs3_read_bigearthnet, rs3_read_millionaid, rs3_read_archive) writes one table
(`uid, dataset, img_name, image_path, source_path, split, labels, meta, meta_status, width,
height`) plus the ledger files through `finish`.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m.ledger import Ledger, StageStats, drops_path, stats_path
from rs5m.tables import RS3_READ_SCHEMA

log = logging.getLogger(__name__)

STAGE = "rs3_read"

READ_SCHEMA = RS3_READ_SCHEMA  # rs5m.tables


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


class Outcome:
    """What happened to one sample: a row to keep, or a drop reason with detail."""

    __slots__ = ("row", "reason", "detail", "uid")

    def __init__(self, uid: str, row: dict | None = None, reason: str | None = None, detail: str = ""):
        self.uid, self.row, self.reason, self.detail = uid, row, reason, detail


def kept_row(uid: str, dataset: str, img_name: str, image_path: Path, source_path: str, **columns) -> Outcome:
    """A kept sample: its identity columns, then the reader's other READ_SCHEMA `columns`."""
    identity = {"uid": uid, "dataset": dataset, "img_name": img_name, "image_path": str(image_path)}
    return Outcome(uid, row={**identity, "source_path": source_path, **columns})


def save_rgb_jpeg(rgb: np.ndarray, path: Path, jpeg_quality: int) -> None:
    """An 8-bit RGB composite as JPEG, 4:4:4 chroma: RS patches are small, subsampling would blur
    their colours."""
    Image.fromarray(rgb, "RGB").save(path, "JPEG", quality=int(jpeg_quality), subsampling=0)


def image_size(path: Path) -> tuple[int, int]:
    """Width and height from the image header (no full decode; the caption stage decodes)."""
    with Image.open(path) as image:
        return image.size


def finish(dataset: str, outcomes: Iterable[Outcome], out_path: str | Path) -> StageStats:
    """Write the kept rows, the drop records and the stats of one reader job."""
    ledger = Ledger(STAGE)
    stats = ledger.entry(dataset)  # a dataset without samples still has its line
    rows = []
    for outcome in outcomes:
        if outcome.row is not None:
            rows.append(outcome.row)
            ledger.keep(dataset)
        else:
            ledger.drop(outcome.uid, dataset, outcome.reason, outcome.detail)
    rows.sort(key=lambda r: r["uid"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=READ_SCHEMA), out_path)
    ledger.write(stats_path(out_path), drops_path(out_path))
    log.info("%s: %d samples, %d kept, dropped %s", dataset, stats.rows_in, stats.kept, stats.dropped)
    return stats


def rgb_composite(red: np.ndarray, green: np.ndarray, blue: np.ndarray, clip: tuple[float, float]) -> np.ndarray:
    """8-bit RGB from reflectance bands by a fixed clip: lo -> 0, hi -> 255, linear, rounded half up.

    A fixed clip (not a per-image stretch) keeps colours comparable between patches (SPEC 3).
    """
    low, high = float(clip[0]), float(clip[1])
    if not high > low:
        raise ValueError(f"reflectance clip must be [low, high] with high > low, got {clip}")
    stack = np.stack([red, green, blue], axis=-1).astype(np.float64)
    scaled = (np.clip(stack, low, high) - low) * (255.0 / (high - low))
    return np.floor(scaled + 0.5).astype(np.uint8)


def map_threads(function: Callable, items: list, threads: int) -> list:
    if threads <= 1 or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def load_json(path: Path) -> tuple[dict, str]:
    """(record, status): status is ok, missing_json, unreadable_json or missing_keys:<k,...>."""
    if not path.exists():
        return {}, "missing_json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}, "unreadable_json"
    if not isinstance(record, dict):
        return {}, "unreadable_json"
    return record, "ok"


def keys_status(record: dict, status: str, expected: Iterable[str]) -> str:
    if status != "ok":
        return status
    missing = [k for k in expected if record.get(k) in (None, "", [])]
    return "missing_keys:" + ",".join(missing) if missing else "ok"


# --- fMoW ------------------------------------------------------------------------------------


# --- BigEarthNet -----------------------------------------------------------------------------


# --- MillionAID ------------------------------------------------------------------------------
