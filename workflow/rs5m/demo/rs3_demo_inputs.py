"""The embedded demo's RS3 inputs: small fMoW, BigEarthNet v1/v2 and MillionAID trees.

Writes the published layouts (real GeoTIFF band files via rasterio, fMoW JSON with the keys of
a real record, a flat MillionAID test folder) plus broken samples that the readers must record.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

S2_BANDS = {  # band -> pixel size of a 120x120 10 m patch
    "B01": 20,
    "B02": 120,
    "B03": 120,
    "B04": 120,
    "B05": 60,
    "B06": 60,
    "B07": 60,
    "B08": 120,
    "B8A": 60,
    "B09": 20,
    "B11": 60,
    "B12": 60,
}

# (category, id, n, lon, lat, country_code, utm, timestamp): northern and southern hemisphere,
# a non-ASCII nearest city, timestamps with and without fractional seconds.
FMOW_SCENES = [
    ("airport", 0, 0, 8.5498, 47.4582, "CHE", "32T", "2012-04-02T10:32:22Z"),
    ("airport", 0, 1, 8.5498, 47.4582, "CHE", "32T", "2015-07-19T10:41:05.123456Z"),
    ("crop_field", 7, 0, -46.6396, -23.5489, "BRA", "23K", "2016-01-14T13:05:59Z"),
    ("stadium", 3, 2, 151.0634, -33.8474, "AUS", "56H", "2014-12-03T00:12:45.5Z"),
]


def _scene(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A synthetic aerial-looking picture: a field gradient with a few rectangles and a road."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 80 * x / width, 90 + 60 * y / height, 50 + 40 * (x + y) / (width + height)], -1)
    image = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(width - 10), rng.randrange(height - 10)
        draw.rectangle(
            [x0, y0, x0 + rng.randrange(5, 30), y0 + rng.randrange(5, 30)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    draw.line([0, rng.randrange(height), width, rng.randrange(height)], fill=(200, 200, 200), width=3)
    return image


def _wkt_box(lon: float, lat: float, half: float) -> str:
    corners = [
        (lon - half, lat + half),
        (lon + half, lat + half),
        (lon + half, lat - half),
        (lon - half, lat - half),
        (lon - half, lat + half),
    ]
    return "POLYGON ((" + ", ".join(f"{x:.16f} {y:.16f}" for x, y in corners) + "))"


def _fmow_record(
    category: str,
    instance: int,
    n: int,
    lon: float,
    lat: float,
    country: str,
    utm: str,
    stamp: str,
    size: tuple[int, int],
    variant: str,
) -> dict:
    """A train `*_rgb.json` record with the keys of the real fMoW record in fixtures/fmow_real."""
    width, height = size
    box = [width // 4, height // 5, width // 3, height // 3]
    return {
        "abs_cal_factors": [0.0106, 0.0082, 0.0109],
        "approximate_wavelengths": [661, 545, 477],
        "bounding_boxes": [
            {
                "ID": -1,
                "box": box,
                "category": category,
                "crowd_rank": 0.66,
                "epsg": "4326",
                "raw_category": category.replace("_", " ").title(),
                "raw_location": _wkt_box(lon, lat, 0.0002),
                "spatial_reference": "GCS_WGS_1984",
            },
            {"ID": 40000 + instance, "box": box, "category": category, "visible": "True"},
        ],
        "cloud_cover": 3 * n,
        "country_code": country,
        "gsd": 0.468074887991 + 0.5 * n,
        "img_filename": f"{category}_{instance}_{n}_{variant}.tif",
        "img_height": height,
        "img_width": width,
        "mean_pixel_height": 4.59e-06,
        "mean_pixel_width": 4.59e-06,
        "multi_resolution_dbl": 1.87,
        "off_nadir_angle_dbl": 21.8978748322 + n,
        "pan_resolution_dbl": 0.468,
        "scan_direction": "Reverse" if n % 2 == 0 else "Forward",
        "sensor_platform_name": "GEOEYE01",
        "sun_azimuth_dbl": 159.2,
        "sun_elevation_dbl": 46.2,
        "target_azimuth_dbl": 31.2082061768 + 40 * n,
        "timestamp": stamp,
        "utm": utm,
    }


def write_fmow(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    size = (160, 120)
    for category, instance, n, lon, lat, country, utm, stamp in FMOW_SCENES:
        folder = root / "train" / category / f"{category}_{instance}"
        folder.mkdir(parents=True, exist_ok=True)
        for variant in ("rgb", "msrgb"):
            stem = f"{category}_{instance}_{n}_{variant}"
            _scene(size, rng).save(folder / f"{stem}.jpg", quality=90)
            record = _fmow_record(category, instance, n, lon, lat, country, utm, stamp, size, variant)
            (folder / f"{stem}.json").write_text(json.dumps(record, indent=1))
    # Broken samples: a JSON without most keys, a JSON with no image, an image with no JSON and
    # an image file that is not a JPEG.
    folder = root / "train" / "fountain" / "fountain_514"
    folder.mkdir(parents=True, exist_ok=True)
    _scene(size, rng).save(folder / "fountain_514_1_rgb.jpg")
    (folder / "fountain_514_1_rgb.json").write_text(json.dumps({"bounding_boxes": [{"box": [1, 2, 30, 40]}]}))
    (folder / "fountain_514_2_rgb.json").write_text(
        json.dumps(_fmow_record("fountain", 514, 2, 8.58, 47.45, "CHE", "32T", "2013-05-05T10:00:00Z", size, "rgb"))
    )
    _scene(size, rng).save(folder / "fountain_514_3_msrgb.jpg")
    (folder / "fountain_514_4_rgb.jpg").write_bytes(b"this is not a jpeg")


def _write_band(path: Path, data: np.ndarray, epsg: int, origin: tuple[float, float], pixel: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="uint16",
        crs=f"EPSG:{epsg}",
        transform=from_origin(*origin, pixel, pixel),
    ) as dst:
        dst.write(data.astype(np.uint16), 1)


def _utm_wkt(zone: int) -> str:
    from rasterio.crs import CRS

    return CRS.from_epsg(32600 + zone).to_wkt()


def _write_patch(folder: Path, name: str, rng: np.random.Generator, zone: int, origin: tuple[float, float]) -> None:
    """All twelve bands at their native sizes: smooth fields (fields, a river) plus sensor noise."""
    folder.mkdir(parents=True, exist_ok=True)
    for band, size in S2_BANDS.items():
        y, x = np.mgrid[0:size, 0:size] / size
        tilt = rng.uniform(-1, 1, size=2)
        field = 800 + 900 * (0.5 + 0.5 * np.sin(4 * (tilt[0] * x + tilt[1] * y) + rng.uniform(0, 6)))
        river = np.abs(y - 0.3 - 0.4 * x) < 0.05
        data = np.where(river, 300, field) + rng.normal(0, 40, size=(size, size))
        _write_band(folder / f"{name}_{band}.tif", np.clip(data, 0, 10000), 32600 + zone, origin, 1200 / size)


# (patch name, UTM zone, upper-left corner, labels, acquisition date)
BEN_V1_PATCHES = [
    (
        "S2A_MSIL2A_20170613T101031_61_39",
        33,
        (399960.0, 5200020.0),
        ["Non-irrigated arable land", "Broad-leaved forest", "Water courses"],
        "2017-06-13 10:10:31",
    ),
    (
        "S2A_MSIL2A_20171221T112501_56_35",
        29,
        (540780.0, 4312440.0),
        ["Continuous urban fabric", "Rice fields"],
        "2017-12-21 11:25:01",
    ),
    (
        "S2B_MSIL2A_20180525T094029_2_40",
        35,
        (600000.0, 6700020.0),
        ["Coniferous forest", "Peatbogs"],
        "2018-05-25 09:40:29",
    ),
]
BEN_V2_PATCHES = [
    (
        "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57",
        33,
        (399960.0, 5300040.0),
        ["Urban fabric", "Industrial or commercial units"],
        "train",
    ),
    (
        "S2B_MSIL2A_20170615T102019_N9999_R122_T32TNS_45_23",
        32,
        (499980.0, 5100000.0),
        ["Arable land", "Pastures", "Inland waters"],
        "train",
    ),
    ("S2A_MSIL2A_20170618T101021_N9999_R022_T32TQR_89_34", 32, (700000.0, 4900020.0), ["Coniferous forest"], "test"),
]


def write_bigearthnet_v1(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    patch_root = root / "BigEarthNet-v1.0"
    train = []
    for name, zone, origin, labels, date in BEN_V1_PATCHES:
        folder = patch_root / name
        _write_patch(folder, name, rng, zone, origin)
        ulx, uly = origin
        record = {
            "labels": labels,
            "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + 1200, "lry": uly - 1200},
            "projection": _utm_wkt(zone),
            "tile_source": f"{name[:26]}_N0205_R022_T{zone}UUP.SAFE",
            "acquisition_date": date,
        }
        (folder / f"{name}_labels_metadata.json").write_text(json.dumps(record))
        train.append(name)
    # Broken samples: a band that is not a GeoTIFF, a missing band, a JSON without projection
    # and date (kept: the raster's CRS and the patch name still give zone and date).
    broken = [
        ("S2A_MSIL2A_20170701T101031_10_10", "unreadable"),
        ("S2A_MSIL2A_20170702T101031_11_11", "missing"),
        ("S2A_MSIL2A_20170703T101031_12_12", "no_keys"),
    ]
    for name, kind in broken:
        folder = patch_root / name
        _write_patch(folder, name, rng, 33, (399960.0, 5200020.0))
        if kind == "unreadable":
            (folder / f"{name}_B03.tif").write_bytes(b"II*\x00 truncated tiff")
        if kind == "missing":
            (folder / f"{name}_B02.tif").unlink()
        record = (
            {"labels": ["Pastures"]}
            if kind == "no_keys"
            else {"labels": ["Pastures"], "projection": _utm_wkt(33), "acquisition_date": "2017-07-01 10:10:31"}
        )
        (folder / f"{name}_labels_metadata.json").write_text(json.dumps(record))
        train.append(name)
    with open(root / "bigearthnet-train.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([[name, name.replace("S2A_MSIL2A", "S1A_IW_GRDH_1SDV")] for name in train])
    with open(root / "bigearthnet-val.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["S2A_MSIL2A_20990101T000000_0_0", "none"]])


def write_bigearthnet_v2(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    rows = []
    for name, zone, origin, labels, split in BEN_V2_PATCHES:
        tile = name.rsplit("_", 2)[0]
        _write_patch(root / "BigEarthNet-S2" / tile / name, name, rng, zone, origin)
        rows.append({"patch_id": name, "s1_name": "S1A_IW_GRDH_1SDV_" + name[11:26], "split": split, "labels": labels})
    # Listed in the metadata but never extracted: a `missing_patch` drop.
    rows.append(
        {
            "patch_id": "S2A_MSIL2A_20170619T101021_N9999_R022_T32TQR_1_1",
            "s1_name": "x",
            "split": "train",
            "labels": ["Pastures"],
        }
    )
    pq.write_table(pa.Table.from_pylist(rows), root / "metadata.parquet")


def write_millionaid(root: Path, seed: int, count: int = 4) -> None:
    rng = random.Random(seed + 2)
    folder = root / "test"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        _scene((128, 128), rng).save(folder / f"P{173410 + i:07d}.jpg", quality=90)
    (folder / "P0999999.jpg").write_bytes(b"\x00" * 64)


def write_rs3_demo(root: str | Path, seed: int) -> dict[str, Path]:
    """Every RS3 demo tree under `root`; returns the dataset roots."""
    root = Path(root)
    roots = {
        "fmow": root / "fmow",
        "bigearthnet_v1": root / "bigearthnet_v1",
        "bigearthnet_v2": root / "bigearthnet_v2",
        "millionaid": root / "millionaid",
    }
    write_fmow(roots["fmow"], seed)
    write_bigearthnet_v1(roots["bigearthnet_v1"], seed)
    write_bigearthnet_v2(roots["bigearthnet_v2"], seed)
    write_millionaid(roots["millionaid"], seed)
    return roots
