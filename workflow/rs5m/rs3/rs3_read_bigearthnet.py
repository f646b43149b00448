"""RS3 reader for BigEarthNet v1/v2 (SPEC 3): RGB composite JPEGs from the B04/B03/B02 GeoTIFFs.

Walks a BigEarthNet root in either published layout; writes the composite JPEGs, one table
(rs5m.rs3.readers.READ_SCHEMA), a ben-id mapping table and the ledger files.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.ledger import StageStats
from rs5m.rs3.readers import (
    Outcome,
    finish,
    kept_row,
    keys_status,
    load_json,
    map_threads,
    rgb_composite,
    save_rgb_jpeg,
)
from rs5m.rs3.settings import BigEarthNetSettings

log = logging.getLogger(__name__)


MAPPING_SCHEMA = pa.schema(
    [
        ("ben_id", pa.int64()),
        ("img_name", pa.string()),
        ("patch_name", pa.string()),
        ("version", pa.string()),
        ("split", pa.string()),
        ("uid", pa.string()),
    ]
)


BIGEARTHNET_EXPECTED_KEYS = ("labels", "projection")


RGB_BANDS = ("B04", "B03", "B02")


_PATCH_TIME = re.compile(r"_(\d{8}T\d{6})(?:_|$)")


def _read_band(path: Path) -> tuple[np.ndarray, str | None, tuple]:
    import rasterio

    with rasterio.open(path) as source:
        data = source.read(1)
        crs = source.crs.to_wkt() if source.crs else None
        transform = tuple(source.transform)[:6]
        return data, crs, (transform, source.width, source.height)


def _patch_geo(crs_wkt: str | None, grid: tuple) -> dict:
    """Raster CRS and the patch centre in lat/lon (only for a projected CRS)."""
    from rs5m.geo import projected_to_lat_lon

    out: dict = {}
    if not crs_wkt:
        return out
    out["raster_crs"] = crs_wkt
    (a, b, c, d, e, f), width, height = grid
    if "PROJCS" in crs_wkt or "PROJCRS" in crs_wkt:
        x = c + a * width / 2 + b * height / 2
        y = f + d * width / 2 + e * height / 2
        point = projected_to_lat_lon(crs_wkt, x, y)
        if point:
            out["center_lat"], out["center_lon"] = point
    return out


def _split_patches_v1(root: Path, split: str) -> list[str] | None:
    for name in (f"bigearthnet-{split}.csv", f"{split}.csv"):
        path = root / name
        if path.exists():
            with open(path, newline="") as handle:
                return [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
    return None


def _v1_patch_root(root: Path) -> Path:
    for name in ("BigEarthNet-v1.0", "BigEarthNet-S2-v1.0", "BigEarthNet-S2"):
        if (root / name).is_dir():
            return root / name
    return root


def bigearthnet_version(root: str | Path, version: str) -> str:
    """v2 when the root has metadata.parquet (the v2 release), else v1."""
    if version in ("v1", "v2"):
        return version
    if version != "auto":
        raise ValueError(f"rs3.bigearthnet.version must be auto, v1 or v2, got {version!r}")
    return "v2" if (Path(root) / "metadata.parquet").exists() else "v1"


def _bigearthnet_patches(root: Path, split: str, version: str) -> list[dict]:
    """Patch name, folder, labels (v2) and JSON path (v1) of every patch of the split."""
    if version == "v2":
        table = pq.read_table(root / "metadata.parquet")
        columns = set(table.column_names)
        if "patch_id" not in columns:
            raise ValueError(f"{root / 'metadata.parquet'} has no patch_id column: {sorted(columns)}")
        patches = []
        for row in table.to_pylist():
            if "split" in columns and split and row.get("split") != split:
                continue
            name = row["patch_id"]
            tile = name.rsplit("_", 2)[0]
            patches.append(
                {
                    "name": name,
                    "folder": root / "BigEarthNet-S2" / tile / name,
                    "labels": list(row.get("labels") or []),
                    "json": None,
                }
            )
        return sorted(patches, key=lambda p: p["name"])
    patch_root = _v1_patch_root(root)
    names = _split_patches_v1(root, split)
    if names is None:
        log.warning("no split CSV for %r under %s: reading every patch folder", split, root)
        names = [p.name for p in patch_root.iterdir() if p.is_dir()]
    return [
        {
            "name": name,
            "folder": patch_root / name,
            "labels": None,
            "json": patch_root / name / f"{name}_labels_metadata.json",
        }
        for name in sorted(set(names))
    ]


def read_bigearthnet(
    roots: str | Path | list,
    out_path: str | Path,
    mapping_path: str | Path,
    image_dir: str | Path,
    settings: BigEarthNetSettings,
    threads: int,
    dataset: str = "bigearthnet",  # not config: the dataset name the rows and uids carry
) -> StageStats:
    """BigEarthNet S2 patches of one split -> RGB JPEGs `ben_<id>.jpg` + reader table + id mapping.

    `roots` is one release folder (v1 or v2, told apart by `version`, auto by default) or a list
    of them. Ids are the positions of the split's patch names in sorted order (root after root),
    so a patch keeps its id on a rerun even when another patch turns readable. A patch with a
    missing or unreadable band is dropped with that reason; a missing or broken JSON only removes
    caption fields.
    """
    split, version, jpeg_quality = settings.split, settings.version, settings.jpeg_quality
    reflectance_clip = tuple(settings.reflectance_clip)
    roots = [Path(r) for r in (roots if isinstance(roots, (list, tuple)) else [roots])]
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    patches = []
    for root in roots:
        root_version = bigearthnet_version(root, version)
        for patch in _bigearthnet_patches(root, split, root_version):
            patches.append({**patch, "root": root, "version": root_version})

    def one(indexed: tuple[int, dict]) -> tuple[Outcome, dict | None]:
        ben_id, patch = indexed
        name, folder, root, version = patch["name"], patch["folder"], patch["root"], patch["version"]
        relative = folder.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        if not folder.is_dir():
            return Outcome(uid, reason="missing_patch", detail=relative), None
        bands, crs, grid = [], None, None
        for band in RGB_BANDS:
            path = folder / f"{name}_{band}.tif"
            if not path.exists():
                return Outcome(uid, reason="missing_band", detail=f"{relative}: {band}"), None
            try:
                data, band_crs, band_grid = _read_band(path)
            except Exception as error:  # noqa: BLE001 - any GDAL error is this patch's drop reason
                return Outcome(uid, reason="unreadable_raster", detail=f"{relative}/{path.name}: {error}"), None
            bands.append(data)
            crs, grid = crs or band_crs, grid or band_grid
        if len({b.shape for b in bands}) != 1:
            return Outcome(uid, reason="band_shape_mismatch", detail=f"{relative}: {[b.shape for b in bands]}"), None
        if patch["json"] is not None:
            record, status = load_json(patch["json"])
            status = keys_status(record, status, BIGEARTHNET_EXPECTED_KEYS)
        else:
            record, status = {"labels": patch["labels"]}, "ok" if patch["labels"] else "missing_keys:labels"
        meta = dict(record)
        meta.update(_patch_geo(crs, grid))
        stamp = _PATCH_TIME.search(name)
        if stamp:
            meta["patch_time"] = stamp.group(1)
        meta["patch_name"] = name
        meta["version"] = version
        rgb = rgb_composite(*bands, clip=tuple(reflectance_clip))
        img_name = f"ben_{ben_id}.jpg"
        image_path = image_dir / img_name
        save_rgb_jpeg(rgb, image_path, jpeg_quality)  # the patches are only 120 px wide
        labels = [str(label) for label in (record.get("labels") or [])]
        kept = kept_row(
            uid,
            dataset,
            img_name,
            image_path,
            relative,
            split=split,
            labels=labels,
            meta=json.dumps(meta, ensure_ascii=False),
            meta_status=status,
            width=int(rgb.shape[1]),
            height=int(rgb.shape[0]),
        )
        mapping = {
            "ben_id": ben_id,
            "img_name": img_name,
            "patch_name": name,
            "version": version,
            "split": split,
            "uid": uid,
        }
        return kept, mapping

    results = map_threads(one, list(enumerate(patches)), threads)
    mapping_rows = [m for _, m in results if m is not None]
    Path(mapping_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(mapping_rows, schema=MAPPING_SCHEMA), mapping_path)
    return finish(dataset, (o for o, _ in results), out_path)
