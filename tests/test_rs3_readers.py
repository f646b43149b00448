"""RS3 readers on generated trees in every layout, and on ../shared/fixtures when present."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from schema_defaults import schema_defaults

from rs5m.columns import make_uid
from rs5m.configured import defaults
from rs5m.demo import rs3_demo_inputs as rs3_demo
from rs5m.ledger import drops_path, read_stats, stats_path
from rs5m.metacaption import bigearthnet_fields, fmow_fields
from rs5m.rs3.rs3_read_bigearthnet import read_bigearthnet, rgb_composite
from rs5m.rs3.rs3_read_fmow import read_fmow
from rs5m.rs3.rs3_read_millionaid import read_millionaid
from rs5m.rs3.settings import BigEarthNetSettings, FmowSettings, MillionAidSettings

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SEASON_RULE = schema_defaults("metacaption")["season_rule"]


def fmow_args(**overrides):
    return {"settings": replace(FmowSettings.from_config(defaults()), **overrides), "threads": 1}


def bigearthnet_args(**overrides):
    return {"settings": replace(BigEarthNetSettings.from_config(defaults()), **overrides), "threads": 1}


def millionaid_args():
    return {"settings": MillionAidSettings.from_config(defaults()), "threads": 1}


needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures not present")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return rs3_demo.write_rs3_demo(tmp_path_factory.mktemp("rs3demo"), seed=0)


def _rows(path):
    return {r["img_name"]: r for r in pq.read_table(path).to_pylist()}


def _drops(path):
    return {r["reason"]: r for r in pq.read_table(drops_path(path)).to_pylist()}


def test_fmow_reader_keeps_both_variants_and_records_broken_samples(demo, tmp_path):
    out = tmp_path / "fmow.parquet"
    stats = read_fmow(demo["fmow"], out, **fmow_args())
    rows = _rows(out)
    assert stats.rows_in == 12 and stats.kept == 10
    assert stats.dropped == {"missing_image": 1, "unreadable_image": 1}
    assert {"fmow_airport_0_0_rgb.jpg", "fmow_airport_0_0_msrgb.jpg"} <= set(rows)
    row = rows["fmow_airport_0_0_rgb.jpg"]
    assert row["uid"] == make_uid("fmow", "train/airport/airport_0/airport_0_0_rgb.jpg")
    assert row["labels"] == ["airport"] and row["meta_status"] == "ok"
    assert (row["width"], row["height"]) == (160, 120)
    assert json.loads(row["meta"])["utm"] == "32T"
    # Image without JSON: kept, labelled by its folder; JSON without the expected keys: kept.
    assert rows["fmow_fountain_514_3_msrgb.jpg"]["meta_status"] == "missing_json"
    assert rows["fmow_fountain_514_3_msrgb.jpg"]["labels"] == ["fountain"]
    assert rows["fmow_fountain_514_1_rgb.jpg"]["meta_status"].startswith("missing_keys:timestamp")
    drops = _drops(out)
    assert drops["missing_image"]["detail"].endswith("fountain_514_2_rgb.jpg")
    assert drops["missing_image"]["uid"] == make_uid("fmow", "train/fountain/fountain_514/fountain_514_2_rgb.jpg")
    assert read_stats([stats_path(out)])[0].kept == 10


def test_fmow_variants_config_restricts_samples(demo, tmp_path):
    stats = read_fmow(demo["fmow"], tmp_path / "f.parquet", **fmow_args(variants=["msrgb"]))
    names = set(_rows(tmp_path / "f.parquet"))
    assert names and all(n.endswith("_msrgb.jpg") for n in names)
    assert stats.dropped == {}


def test_rgb_composite_known_values():
    red = np.array([[0, 1000], [2000, 3000]], dtype=np.uint16)
    green = np.array([[500, 1500], [100, 1999]], dtype=np.uint16)
    blue = np.array([[-5, 20], [40, 60]], dtype=np.int16)
    rgb = rgb_composite(red, green, blue, clip=(0, 2000))
    assert rgb.dtype == np.uint8
    assert rgb[..., 0].tolist() == [[0, 128], [255, 255]]  # 127.5 rounds up; above the clip saturates
    assert rgb[..., 1].tolist() == [[64, 191], [13, 255]]
    assert rgb[..., 2].tolist() == [[0, 3], [5, 8]]
    shifted = rgb_composite(red, red, red, clip=(1000, 3000))
    assert shifted[..., 0].tolist() == [[0, 0], [128, 255]]
    with pytest.raises(ValueError):
        rgb_composite(red, green, blue, clip=(2000, 2000))


def test_bigearthnet_v1_and_v2_patches_to_jpegs_with_mapping(demo, tmp_path):
    out, mapping, images = tmp_path / "ben.parquet", tmp_path / "map.parquet", tmp_path / "img"
    stats = read_bigearthnet(
        [demo["bigearthnet_v1"], demo["bigearthnet_v2"]],
        out,
        mapping,
        images,
        **bigearthnet_args(reflectance_clip=(0, 3000)),
    )
    assert stats.rows_in == 9 and stats.kept == 6
    assert stats.dropped == {"unreadable_raster": 1, "missing_band": 1, "missing_patch": 1}
    table = pq.read_table(mapping).to_pylist()
    by_patch = {m["patch_name"]: m for m in table}
    # v1 patches of the train CSV first (sorted), then the v2 train patches; test split excluded.
    assert by_patch["S2A_MSIL2A_20170613T101031_61_39"]["ben_id"] == 0
    assert by_patch["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"]["version"] == "v2"
    assert "S2A_MSIL2A_20170618T101021_N9999_R022_T32TQR_89_34" not in by_patch
    rows = _rows(out)
    first = rows["ben_0.jpg"]
    assert first["labels"] == ["Non-irrigated arable land", "Broad-leaved forest", "Water courses"]
    assert first["uid"] == make_uid("bigearthnet", "BigEarthNet-v1.0/S2A_MSIL2A_20170613T101031_61_39")
    # The JPEG is the fixed-clip composite of B04/B03/B02 (JPEG loss allowed).
    import rasterio

    folder = Path(demo["bigearthnet_v1"]) / "BigEarthNet-v1.0" / "S2A_MSIL2A_20170613T101031_61_39"
    bands = []
    for band in ("B04", "B03", "B02"):
        with rasterio.open(folder / f"S2A_MSIL2A_20170613T101031_61_39_{band}.tif") as src:
            bands.append(src.read(1))
    expected = rgb_composite(*bands, clip=(0, 3000)).astype(int)
    written = np.asarray(Image.open(first["image_path"])).astype(int)
    assert written.shape == (120, 120, 3)
    assert np.abs(written - expected).mean() < 3
    # A JSON without projection/date still yields zone (raster CRS) and date (patch name).
    no_keys = next(r for r in rows.values() if "20170703" in r["source_path"])
    assert no_keys["meta_status"].startswith("missing_keys:projection")
    fields = bigearthnet_fields(json.loads(no_keys["meta"]), SEASON_RULE)
    assert fields["utm"] == "33N" and fields["date"] == "July 3, 2017"
    v2 = next(r for r in rows.values() if "T32TNS_45_23" in r["source_path"])
    assert v2["labels"] == ["Arable land", "Pastures", "Inland waters"]
    assert 40 < json.loads(v2["meta"])["center_lat"] < 50  # UTM 32N grid -> northern Italy


def test_millionaid_flat_folder(demo, tmp_path):
    stats = read_millionaid(demo["millionaid"], tmp_path / "m.parquet", **millionaid_args())
    rows = _rows(tmp_path / "m.parquet")
    assert stats.kept == 4 and stats.dropped == {"unreadable_image": 1}
    assert rows["millionaid_P0173410.jpg"]["labels"] == []
    assert rows["millionaid_P0173410.jpg"]["uid"] == make_uid("millionaid", "test/P0173410.jpg")


@needs_fixtures
def test_millionaid_labelled_hierarchy_fixture(tmp_path):
    read_millionaid(FIXTURES / "torchgeo" / "millionaid", tmp_path / "m.parquet", **millionaid_args())
    rows = _rows(tmp_path / "m.parquet")
    assert rows["millionaid_P0115918.jpg"]["labels"] == ["agriculture_land", "grassland", "meadow"]
    assert rows["millionaid_P0060208.jpg"]["labels"] == ["water_area", "beach"]


@needs_fixtures
def test_torchgeo_fmow_json_without_image_is_a_recorded_drop(tmp_path):
    stats = read_fmow(FIXTURES / "torchgeo" / "fmow", tmp_path / "f.parquet", **fmow_args())
    assert (stats.rows_in, stats.kept, stats.dropped) == (1, 0, {"missing_image": 1})


@needs_fixtures
def test_real_fmow_record_and_image_parse(tmp_path):
    folder = tmp_path / "train" / "fountain" / "fountain_514"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "fmow_real" / "fountain_514_1_rgb.DERIVED.json", folder / "fountain_514_1_rgb.json")
    shutil.copy(FIXTURES / "fmow_real" / "airport_0_0_msrgb.jpg", folder / "fountain_514_1_rgb.jpg")
    stats = read_fmow(tmp_path, tmp_path / "f.parquet", **fmow_args())
    row = _rows(tmp_path / "f.parquet")["fmow_fountain_514_1_rgb.jpg"]
    assert stats.kept == 1 and row["meta_status"] == "ok" and (row["width"], row["height"]) == (2050, 1578)
    fields = fmow_fields(json.loads(row["meta"]), season_rule=SEASON_RULE)
    assert fields["country"] == "Switzerland" and fields["city"] == "Kloten"
    assert fields["utm"] == "32T" and fields["season"] == "spring" and fields["date"] == "April 2, 2012"
    assert fields["cells"] == "center"  # box [466, 299, 72, 60] in 977 x 663 lies in the middle cell
    assert fields["target_azimuth"] == "31.21°" and fields["scan_direction"] == "reverse"


@needs_fixtures
def test_torchgeo_bigearthnet_layouts(tmp_path):
    base = FIXTURES / "torchgeo" / "bigearthnet"
    v1 = read_bigearthnet(
        base / "v1", tmp_path / "v1.parquet", tmp_path / "v1m.parquet", tmp_path / "i1", **bigearthnet_args()
    )
    v2 = read_bigearthnet(
        base / "v2", tmp_path / "v2.parquet", tmp_path / "v2m.parquet", tmp_path / "i2", **bigearthnet_args()
    )
    assert (v1.kept, v2.kept) == (2, 2)  # the train split of each
    rows = _rows(tmp_path / "v2.parquet")
    labels = sorted(tuple(r["labels"]) for r in rows.values())
    assert ("Broad-leaved forest", "Mixed forest", "Transitional woodland, shrub") in labels


@needs_fixtures
def test_real_bigearthnet_jsons_parse():
    real = FIXTURES / "bigearthnet_real"
    records = [json.loads(p.read_text()) for p in sorted(real.rglob("*_labels_metadata.json"))]
    assert len(records) >= 3
    for record in records:
        fields = bigearthnet_fields(record, SEASON_RULE)
        assert fields["utm"] in {"29N", "33N"} and fields["labels"] and fields["date"]
    winter = next(r for r in records if r["acquisition_time"].startswith("2017-12-21"))
    assert bigearthnet_fields(winter, SEASON_RULE)["season"] == "winter"
    # The S2 excerpt: line breaks were inserted inside the record; joining them restores it.
    lines = (real / "S2_v1_labels_metadata.EXCERPT.txt").read_text().splitlines()
    record = json.loads("".join(line for line in lines if not line.startswith("#")))
    fields = bigearthnet_fields(record, SEASON_RULE)
    assert (fields["utm"], fields["date"], fields["time"]) == ("29N", "December 21, 2017", "11:25 UTC")
