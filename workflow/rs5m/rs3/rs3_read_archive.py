"""RS3 reader for any labelled RS archive (`rs3.datasets` entries with `format: folder | table`).

Walks a folder of class sub-folders, or reads a CSV/parquet table of image paths and fields; writes
RGB JPEGs of multi-band GeoTIFFs, one table (rs5m.rs3.readers.READ_SCHEMA) and the ledger files.

`folder`: every image under the root; its labels are the names of the folders between the root
and the file (EuroSAT, PatternNet, UC Merced, ...). `table`: one row per image, with `path`
(relative to the root) and any of `labels` (a list, or one string split at `;` or `|`), `lat`,
`lon`, `date`, `gsd` (metres), `sensor`, `country`; the fields a row has go into `meta`, and the
meta-caption uses whichever exist. A GeoTIFF is read with rasterio: the configured `bands`
(1-based, red/green/blue; the first three when null) mapped to 0..255 by `reflectance_clip`, as for
BigEarthNet; other images are used in place.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.ledger import StageStats
from rs5m.rs3.readers import (
    IMAGE_SUFFIXES,
    Outcome,
    finish,
    image_size,
    kept_row,
    map_threads,
    rgb_composite,
    save_rgb_jpeg,
)
from rs5m.rs3.settings import ArchiveSettings

log = logging.getLogger(__name__)

FORMATS = ("folder", "table")
# Columns of a `table` archive besides `path`; each one a row has becomes a field of its `meta`.
TABLE_FIELDS = ("labels", "lat", "lon", "date", "gsd", "sensor", "country")
GEOTIFF_SUFFIXES = (".tif", ".tiff")
_LABEL_SPLIT = re.compile(r"\s*[;|]\s*")


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [v for v in _LABEL_SPLIT.split(str(value).strip()) if v]


def _table_rows(root: Path, table: str) -> list[dict]:
    path = Path(table) if Path(table).is_absolute() else root / table
    if path.suffix.lower() == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if rows and "path" not in rows[0]:
        raise ValueError(f"{path}: an RS3 table archive needs a `path` column (has {sorted(rows[0])})")
    return rows


def _samples(root: Path, archive_format: str, table: str | None) -> list[tuple[str, dict]]:
    """(path relative to the root, fields) of every sample, in path order."""
    if archive_format == "folder":
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [(p.relative_to(root).as_posix(), {"labels": list(p.relative_to(root).parts[:-1])}) for p in files]
    if archive_format != "table":
        raise ValueError(f"an RS3 archive's format is one of {FORMATS}, got {archive_format!r}")
    if not table:
        raise ValueError("an RS3 table archive needs `table`: the CSV/parquet file of its images")
    samples = []
    for row in _table_rows(root, table):
        fields = {key: row.get(key) for key in TABLE_FIELDS if row.get(key) not in (None, "")}
        fields["labels"] = _labels(fields.get("labels"))
        samples.append((str(row["path"]).strip(), fields))
    return sorted(samples, key=lambda sample: sample[0])


def _geotiff_rgb(path: Path, bands: Sequence[int] | None, clip: Sequence[float] | None) -> tuple[np.ndarray, dict]:
    """8-bit RGB of a GeoTIFF's bands, and its centre in lat/lon where its CRS allows."""
    import rasterio

    from rs5m.geo import projected_to_lat_lon

    with rasterio.open(path) as source:
        chosen = list(bands) if bands else ([1, 2, 3] if source.count >= 3 else [1, 1, 1])
        if len(chosen) != 3 or max(chosen) > source.count or min(chosen) < 1:
            raise ValueError(f"bands {chosen} do not fit a raster of {source.count} band(s)")
        data = source.read(chosen)
        meta: dict = {}
        if source.crs is not None:
            x, y = source.xy(source.height // 2, source.width // 2)
            if source.crs.is_geographic:
                meta["lat"], meta["lon"] = y, x
            else:
                point = projected_to_lat_lon(source.crs.to_wkt(), x, y)
                if point:
                    meta["lat"], meta["lon"] = point
    low_high = tuple(clip) if clip else (0.0, 255.0)
    return rgb_composite(data[0], data[1], data[2], clip=low_high), meta


def read_archive(
    dataset: str,
    root: str | Path,
    out_path: str | Path,
    image_dir: str | Path,
    settings: ArchiveSettings,
    threads: int,
) -> StageStats:
    """One labelled RS archive -> reader table (+ JPEG composites of its GeoTIFFs in `image_dir`).

    `dataset` names the rows and uids (`uid` from the dataset and the path relative to `root`);
    `img_name` is `<dataset>_<path with / as _>.jpg`, unique by construction. A missing or
    unreadable image is dropped with that reason (`missing_image`, `unreadable_image`).
    """
    archive_format, table, bands = settings.format, settings.table, settings.bands
    reflectance_clip, jpeg_quality = settings.reflectance_clip, settings.jpeg_quality
    root = Path(root)
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)

    def one(sample: tuple[str, dict]) -> Outcome:
        relative, fields = sample
        uid = make_uid(dataset, relative)
        path = root / relative
        if not path.is_file():
            return Outcome(uid, reason="missing_image", detail=relative)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(relative).with_suffix("")))
        img_name = f"{dataset}_{stem}.jpg"
        meta = {k: v for k, v in fields.items() if k != "labels"}
        try:
            if path.suffix.lower() in GEOTIFF_SUFFIXES:
                rgb, raster_meta = _geotiff_rgb(path, bands, reflectance_clip)
                for key, value in raster_meta.items():
                    meta.setdefault(key, value)
                image_path = image_dir / img_name
                save_rgb_jpeg(rgb, image_path, jpeg_quality)
                width, height = int(rgb.shape[1]), int(rgb.shape[0])
            else:
                image_path = path
                width, height = image_size(path)
        except Exception as error:  # noqa: BLE001 - any decoder error is this sample's drop reason
            return Outcome(uid, reason="unreadable_image", detail=f"{relative}: {error}")
        return kept_row(
            uid,
            dataset,
            img_name,
            image_path,
            relative,
            split="",
            labels=list(fields.get("labels") or []),
            meta=json.dumps({"archive": True, **meta}, ensure_ascii=False, default=str),
            meta_status="ok",
            width=width,
            height=height,
        )

    return finish(dataset, map_threads(one, _samples(root, archive_format, table), threads), out_path)
