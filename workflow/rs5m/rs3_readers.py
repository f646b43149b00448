"""RS3 readers (SPEC 3): fMoW-rgb, BigEarthNet v1/v2 (RGB composite JPEGs) and MillionAID.

Each reader walks a dataset root in its published layout and writes one table
(`uid, dataset, img_name, image_path, source_path, split, labels, meta, meta_status, width,
height`) plus the ledger files; BigEarthNet also writes JPEGs and a ben-id mapping table.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m.columns import make_uid
from rs5m.ledger import StageStats, drops_path, drops_table, stats_path, write_drops, write_stats

log = logging.getLogger(__name__)

STAGE = "rs3_read"

READ_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("dataset", pa.string()),
        ("img_name", pa.string()),
        ("image_path", pa.string()),
        ("source_path", pa.string()),
        ("split", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("meta", pa.string()),
        ("meta_status", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)

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

# Keys of a train *_rgb.json that the meta-caption uses; a record without them is kept with
# meta_status "missing_keys" and its caption loses those clauses.
FMOW_EXPECTED_KEYS = ("bounding_boxes", "timestamp", "country_code", "gsd", "utm", "cloud_cover",
                      "scan_direction", "target_azimuth_dbl", "off_nadir_angle_dbl")
BIGEARTHNET_EXPECTED_KEYS = ("labels", "projection")
RGB_BANDS = ("B04", "B03", "B02")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_FMOW_IMAGE = re.compile(r"^(?P<stem>.+_(?P<variant>rgb|msrgb))\.(?:jpg|jpeg)$", re.IGNORECASE)
_PATCH_TIME = re.compile(r"_(\d{8}T\d{6})(?:_|$)")


class _Outcome:
    """What happened to one sample: a row to keep, or a drop reason with detail."""

    __slots__ = ("row", "reason", "detail", "uid")

    def __init__(self, uid: str, row: dict | None = None, reason: str | None = None, detail: str = ""):
        self.uid, self.row, self.reason, self.detail = uid, row, reason, detail


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height from the image header (no full decode; the caption stage decodes)."""
    with Image.open(path) as image:
        return image.size


def _finish(dataset: str, outcomes: Iterable[_Outcome], out_path: str | Path) -> StageStats:
    """Write the kept rows, the drop records and the stats of one reader job."""
    stats = StageStats(STAGE, dataset)
    rows, drops = [], []
    for outcome in outcomes:
        stats.rows_in += 1
        if outcome.row is not None:
            rows.append(outcome.row)
            stats.kept += 1
        else:
            stats.drop(outcome.reason)
            drops.append({"uid": outcome.uid, "source": dataset, "stage": STAGE, "reason": outcome.reason,
                          "detail": outcome.detail})
    rows.sort(key=lambda r: r["uid"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=READ_SCHEMA), out_path)
    write_drops(drops_path(out_path), drops_table(drops))
    write_stats(stats_path(out_path), [stats])
    log.info("%s: %d samples, %d kept, dropped %s", dataset, stats.rows_in, stats.kept, stats.dropped)
    return stats


def _map(function: Callable, items: list, threads: int) -> list:
    if threads <= 1 or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def _load_json(path: Path) -> tuple[dict, str]:
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


def _keys_status(record: dict, status: str, expected: Iterable[str]) -> str:
    if status != "ok":
        return status
    missing = [k for k in expected if record.get(k) in (None, "", [])]
    return "missing_keys:" + ",".join(missing) if missing else "ok"


# --- fMoW ------------------------------------------------------------------------------------


def read_fmow(root: str | Path, out_path: str | Path, split: str = "train",
              variants: Iterable[str] = ("rgb", "msrgb"), threads: int = 1, dataset: str = "fmow") -> StageStats:
    """fMoW-rgb `<split>/<category>/<category>_<id>/<category>_<id>_<n>_{rgb,msrgb}.{jpg,json}`.

    Every image is a sample and takes its metadata from the JSON of the same stem. A JSON with no
    image is a dropped sample (`missing_image`); an image with no or a broken JSON is kept with
    the category of its folder and a meta_status saying what was missing.
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"fMoW split folder not found: {split_dir}")
    variants = {v.lower() for v in variants}
    stems: dict[Path, dict[str, Path]] = {}
    for path in sorted(split_dir.glob("*/*/*")):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix == ".json":
            stem = path.with_suffix("")
            if stem.name.rsplit("_", 1)[-1].lower() in variants:
                stems.setdefault(stem, {})["json"] = path
        else:
            match = _FMOW_IMAGE.match(path.name)
            if match and match.group("variant").lower() in variants:
                stems.setdefault(path.with_name(match.group("stem")), {})["image"] = path

    def one(item: tuple[Path, dict[str, Path]]) -> _Outcome:
        stem, files = item
        image = files.get("image") or stem.with_name(stem.name + ".jpg")
        relative = image.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        if "image" not in files:
            return _Outcome(uid, reason="missing_image", detail=relative)
        try:
            width, height = _image_size(image)
        except Exception as error:  # noqa: BLE001 - any decoder error is this sample's drop reason
            return _Outcome(uid, reason="unreadable_image", detail=f"{relative}: {error}")
        record, status = _load_json(files.get("json") or stem.with_suffix(".json"))
        status = _keys_status(record, status, FMOW_EXPECTED_KEYS)
        category_folder = image.parent.parent.name
        boxes = record.get("bounding_boxes") if isinstance(record.get("bounding_boxes"), list) else []
        box_categories = [b.get("category") for b in boxes if isinstance(b, dict) and b.get("category")]
        category = box_categories[1] if len(box_categories) > 1 else (
            box_categories[0] if box_categories else record.get("category") or category_folder)
        return _Outcome(uid, row={
            "uid": uid,
            "dataset": dataset,
            "img_name": f"{dataset}_{image.stem}.jpg",
            "image_path": str(image),
            "source_path": relative,
            "split": split,
            "labels": [str(category)],
            "meta": json.dumps(record, ensure_ascii=False),
            "meta_status": status,
            "width": width,
            "height": height,
        })

    return _finish(dataset, _map(one, sorted(stems.items()), threads), out_path)


# --- BigEarthNet -----------------------------------------------------------------------------


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


def bigearthnet_version(root: str | Path, version: str = "auto") -> str:
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
            patches.append({"name": name, "folder": root / "BigEarthNet-S2" / tile / name,
                            "labels": list(row.get("labels") or []), "json": None})
        return sorted(patches, key=lambda p: p["name"])
    patch_root = _v1_patch_root(root)
    names = _split_patches_v1(root, split)
    if names is None:
        log.warning("no split CSV for %r under %s: reading every patch folder", split, root)
        names = [p.name for p in patch_root.iterdir() if p.is_dir()]
    return [
        {"name": name, "folder": patch_root / name, "labels": None,
         "json": patch_root / name / f"{name}_labels_metadata.json"}
        for name in sorted(set(names))
    ]


def read_bigearthnet(roots: str | Path | list, out_path: str | Path, mapping_path: str | Path,
                     image_dir: str | Path, split: str = "train", version: str = "auto",
                     clip: tuple[float, float] = (0, 2000), jpeg_quality: int = 95, threads: int = 1,
                     dataset: str = "bigearthnet") -> StageStats:
    """BigEarthNet S2 patches of one split -> RGB JPEGs `ben_<id>.jpg` + reader table + id mapping.

    `roots` is one release folder (v1 or v2, told apart by `version`, auto by default) or a list
    of them. Ids are the positions of the split's patch names in sorted order (root after root),
    so a patch keeps its id on a rerun even when another patch turns readable. A patch with a
    missing or unreadable band is dropped with that reason; a missing or broken JSON only removes
    caption fields.
    """
    roots = [Path(r) for r in (roots if isinstance(roots, (list, tuple)) else [roots])]
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    patches = []
    for root in roots:
        root_version = bigearthnet_version(root, version)
        for patch in _bigearthnet_patches(root, split, root_version):
            patches.append({**patch, "root": root, "version": root_version})

    def one(indexed: tuple[int, dict]) -> tuple[_Outcome, dict | None]:
        ben_id, patch = indexed
        name, folder, root, version = patch["name"], patch["folder"], patch["root"], patch["version"]
        relative = folder.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        if not folder.is_dir():
            return _Outcome(uid, reason="missing_patch", detail=relative), None
        bands, crs, grid = [], None, None
        for band in RGB_BANDS:
            path = folder / f"{name}_{band}.tif"
            if not path.exists():
                return _Outcome(uid, reason="missing_band", detail=f"{relative}: {band}"), None
            try:
                data, band_crs, band_grid = _read_band(path)
            except Exception as error:  # noqa: BLE001 - any GDAL error is this patch's drop reason
                return _Outcome(uid, reason="unreadable_raster", detail=f"{relative}/{path.name}: {error}"), None
            bands.append(data)
            crs, grid = crs or band_crs, grid or band_grid
        if len({b.shape for b in bands}) != 1:
            return _Outcome(uid, reason="band_shape_mismatch",
                            detail=f"{relative}: {[b.shape for b in bands]}"), None
        if patch["json"] is not None:
            record, status = _load_json(patch["json"])
            status = _keys_status(record, status, BIGEARTHNET_EXPECTED_KEYS)
        else:
            record, status = {"labels": patch["labels"]}, "ok" if patch["labels"] else "missing_keys:labels"
        meta = dict(record)
        meta.update(_patch_geo(crs, grid))
        stamp = _PATCH_TIME.search(name)
        if stamp:
            meta["patch_time"] = stamp.group(1)
        meta["patch_name"] = name
        meta["version"] = version
        rgb = rgb_composite(*bands, clip=clip)
        img_name = f"ben_{ben_id}.jpg"
        image_path = image_dir / img_name
        # 4:4:4 chroma: the patches are only 120 px wide, subsampling would blur their colours.
        Image.fromarray(rgb, "RGB").save(image_path, "JPEG", quality=int(jpeg_quality), subsampling=0)
        labels = [str(label) for label in (record.get("labels") or [])]
        row = {
            "uid": uid, "dataset": dataset, "img_name": img_name, "image_path": str(image_path),
            "source_path": relative, "split": split, "labels": labels,
            "meta": json.dumps(meta, ensure_ascii=False), "meta_status": status,
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
        }
        mapping = {"ben_id": ben_id, "img_name": img_name, "patch_name": name, "version": version,
                   "split": split, "uid": uid}
        return _Outcome(uid, row=row), mapping

    results = _map(one, list(enumerate(patches)), threads)
    mapping_rows = [m for _, m in results if m is not None]
    Path(mapping_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(mapping_rows, schema=MAPPING_SCHEMA), mapping_path)
    return _finish(dataset, (o for o, _ in results), out_path)


# --- MillionAID ------------------------------------------------------------------------------


def read_millionaid(root: str | Path, out_path: str | Path, split: str = "test", threads: int = 1,
                    dataset: str = "millionaid") -> StageStats:
    """MillionAID `<split>/` as one flat folder of images (the released test split), or the
    labelled hierarchy `<split>/<L1>/<L2>[/<L3>]/P*.jpg`, whose folder names become labels."""
    root = Path(root)
    split_dir = root / split if (root / split).is_dir() else root
    files = sorted(p for p in split_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    seen: set[str] = set()

    def one(path: Path) -> _Outcome:
        relative = path.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        try:
            width, height = _image_size(path)
        except Exception as error:  # noqa: BLE001 - any decoder error is this sample's drop reason
            return _Outcome(uid, reason="unreadable_image", detail=f"{relative}: {error}")
        labels = list(path.relative_to(split_dir).parts[:-1])
        return _Outcome(uid, row={
            "uid": uid, "dataset": dataset, "img_name": f"{dataset}_{path.stem}.jpg",
            "image_path": str(path), "source_path": relative, "split": split,
            "labels": labels, "meta": "{}", "meta_status": "ok", "width": width, "height": height,
        })

    outcomes = []
    for outcome in _map(one, files, threads):
        # Two files with one stem would collide in the shards' img_name: the first (sorted) wins.
        if outcome.row is not None:
            if outcome.row["img_name"] in seen:
                outcome = _Outcome(outcome.uid, reason="duplicate_name", detail=outcome.row["source_path"])
            else:
                seen.add(outcome.row["img_name"])
        outcomes.append(outcome)
    return _finish(dataset, outcomes, out_path)
