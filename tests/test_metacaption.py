"""Meta-caption fields and templates: hemispheres, missing keys, odd timestamps, non-ASCII places."""
import json
from datetime import timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rs5m import geo
from rs5m.metacaption import (
    bigearthnet_fields,
    cc3m_select_labels,
    fmow_fields,
    meta_caption,
    parse_cc3m_labels_line,
    pub11_meta_captions,
    render,
    rs3_metacaptions,
)

REAL_WKT = ('PROJCS["WGS 84 / UTM zone 29N",GEOGCS["WGS 84",DATUM["WGS_1984"]],'
            'PROJECTION["Transverse_Mercator"],AUTHORITY["EPSG","32629"]]')


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2012-04-02T10:32:22Z", (2012, 4, 2, 10, 32, 22, 0)),
        ("2015-07-19T10:41:05.123456Z", (2015, 7, 19, 10, 41, 5, 123456)),
        ("2014-12-03T00:12:45.5Z", (2014, 12, 3, 0, 12, 45, 500000)),
        ("2016-01-14T13:05:59.1234567Z", (2016, 1, 14, 13, 5, 59, 123456)),  # 7 digits cut to 6
        ("2017-12-21 11:25:01", (2017, 12, 21, 11, 25, 1, 0)),  # BigEarthNet S2
        ("2017-12-21T06:42:38", (2017, 12, 21, 6, 42, 38, 0)),  # BigEarthNet S1
        ("2012-07-04 15:30:00.0", (2012, 7, 4, 15, 30, 0, 0)),  # YFCC date_taken
        ("20170613T101031", (2017, 6, 13, 10, 10, 31, 0)),  # patch name
    ],
)
def test_parse_timestamp_formats(text, expected):
    parsed = geo.parse_timestamp(text)
    assert (parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second,
            parsed.microsecond) == expected


def test_parse_timestamp_epoch_and_garbage():
    assert geo.parse_timestamp(1577836800.0).isoformat() == "2020-01-01T00:00:00+00:00"
    assert geo.parse_timestamp("1577836800").tzinfo == timezone.utc
    for bad in (None, "", "yesterday", "2012-13-45T00:00:00Z", float("nan")):
        assert geo.parse_timestamp(bad) is None


def test_seasons_hemisphere_and_original_rule():
    assert geo.season(1, 47.0) == "winter"
    assert geo.season(1, -23.5) == "summer"
    assert geo.season(4, -33.0) == "fall"
    assert geo.season(1, -23.5, rule="northern") == "winter"
    assert geo.season(7, None) == "summer"  # unknown latitude: northern
    with pytest.raises(ValueError):
        geo.season(1, 0.0, rule="southern")


def test_utm_zone_from_wkt_and_vertex():
    assert geo.utm_zone_from_wkt(REAL_WKT) == "29N"
    assert geo.utm_zone_from_wkt('PROJCS["WGS 84 / UTM zone 7S"]') == "7S"
    assert geo.utm_zone_from_wkt("") is None and geo.utm_zone_from_wkt('GEOGCS["WGS 84"]') is None
    assert geo.wkt_first_vertex("POLYGON ((8.58 47.44, 8.59 47.44))") == (8.58, 47.44)
    assert geo.wkt_first_vertex("POLYGON EMPTY") is None


def test_box_grid_cells_two_largest_overlaps():
    assert geo.box_grid_cells([0, 0, 10, 10], 90, 90) == ["top-left"]
    # Mostly in the right column, more in the bottom row than the middle one.
    assert geo.box_grid_cells([62, 50, 25, 35], 90, 90) == ["bottom-right", "center-right"]
    assert geo.box_grid_cells([40, 40, 10, 10], 90, 90) == ["center"]
    assert geo.box_grid_cells([0, 0, 0, 5], 90, 90) == []


def test_template_optional_segments():
    assert render("a[ over {place}][ in {season}] shows {category}", {"category": "dam", "season": "fall"}) == (
        "a in fall shows dam", 2)
    assert render("a shows {category}", {}) is None
    assert render("[over {place}]", {}) is None  # nothing filled: no clause


SOUTH = {
    "bounding_boxes": [
        {"box": [10, 10, 40, 40], "raw_location": "POLYGON ((-46.6396 -23.5489, -46.63 -23.54))"},
        {"box": [10, 10, 40, 40], "category": "crop_field"},
    ],
    "country_code": "BRA",
    "timestamp": "2016-01-14T13:05:59.25Z",
    "img_width": 120,
    "img_height": 120,
    "utm": "23K",
}


def test_fmow_southern_hemisphere_non_ascii_place():
    fields = fmow_fields(SOUTH)
    assert fields["city"] == "São Paulo" and fields["country"] == "Brazil"
    assert fields["season"] == "summer"  # January south of the equator
    assert fields["cells"] == "top-left and top-center"
    assert fields["category"] == "crop field"
    assert fmow_fields(SOUTH, season_rule="northern")["season"] == "winter"
    caption = meta_caption("fmow", fields, "uid-1", seed=0)
    assert "São Paulo, Brazil" in caption and "summer" in caption and "23K" in caption
    assert "January 14, 2016" in caption


def test_fmow_missing_fields_drop_their_clause_only():
    fields = fmow_fields({"utm": "32T", "bounding_boxes": "not a list", "gsd": "n/a", "timestamp": "garbage"})
    caption = meta_caption("fmow", fields, "uid-2")
    assert "UTM zone 32T" in caption
    for absent in ("ground sample", "pixel", "acquired", "dated", "azimuth", "cloud"):
        assert absent not in caption
    assert meta_caption("fmow", fmow_fields({}), "uid-3") == ""
    only_category = meta_caption("fmow", fmow_fields({}, category_hint="dam"), "uid-4")
    assert "dam" in only_category and "None" not in only_category


def test_seeded_template_choice():
    fields = fmow_fields(SOUTH)
    assert meta_caption("fmow", fields, "same", seed=1) == meta_caption("fmow", fields, "same", seed=1)
    captions = {meta_caption("fmow", fields, f"uid-{i}", seed=1) for i in range(30)}
    assert len(captions) > 3
    assert {meta_caption("fmow", fields, "u", seed=s) for s in range(30)} != {meta_caption("fmow", fields, "u", 0)}


def test_bigearthnet_fields_from_json():
    record = {"labels": ["Sea and ocean", "Beaches, dunes, sands"], "projection": REAL_WKT,
              "acquisition_date": "2017-07-18 11:25:01"}
    fields = bigearthnet_fields(record)
    assert fields["labels"] == "'sea and ocean, beaches, dunes, sands'"
    assert (fields["utm"], fields["season"], fields["time"]) == ("29N", "summer", "11:25 UTC")
    south = bigearthnet_fields({**record, "projection": 'PROJCS["WGS 84 / UTM zone 56S"]'})
    assert south["season"] == "winter"
    caption = meta_caption("bigearthnet", bigearthnet_fields({"labels": []}), "u")
    assert caption == ""


def test_cc3m_label_rule():
    labels = ["a", "b", "c", "d"]
    assert cc3m_select_labels(labels, [0.95, 0.5, 0.91, 0.99]) == ["a", "c", "d"]
    assert cc3m_select_labels(labels, [0.95, 0.92, 0.91, 0.99]) == ["a", "b", "c"]
    assert cc3m_select_labels(labels, [0.5, 0.95, 0.1, 0.2]) == ["b"]
    assert cc3m_select_labels(labels, [0.5, 0.6, 0.7, 0.2]) == ["c"]
    assert parse_cc3m_labels_line("cap\thttp://x/1.jpg\tsky,field\t/m/1,/m/2\t0.97,0.5") == (
        "http://x/1.jpg", ["sky", "field"], [0.97, 0.5])
    assert parse_cc3m_labels_line("short\tline") is None


def test_pub11_meta_captions_yfcc_cc3m_redcaps():
    table = pa.table({
        "uid": ["y1", "y2", "c1", "r1", "l1"],
        "source": ["yfcc15m", "yfcc15m", "cc3m", "redcaps", "laion2b"],
        "url": ["u1", "u2", "http://x/1.jpg", "u4", "u5"],
        "src_latitude": ["-33.86", "", None, None, None],
        "src_longitude": ["151.2", "", None, None, None],
        "src_date_taken": ["2012-07-04 15:30:00.0", "2010-01-02 00:00:00.0", None, None, None],
        "src_created_utc": [None, None, None, 1577836800.0, None],
    })
    out = pub11_meta_captions(table, cc3m_labels={"http://x/1.jpg": ["aerial photography", "field"]})
    captions = out.column("meta_caption").to_pylist()
    assert "Australia" in captions[0] and "winter" in captions[0]  # July in Sydney
    assert "Australia" not in captions[1] and "January 2, 2010" in captions[1]
    assert "aerial photography, field" in captions[2]
    assert "January 1, 2020" in captions[3]
    assert captions[4] == ""
    assert json.loads(out.column("geo")[0].as_py())["country"] == "Australia"


def test_rs3_metacaptions_parts(tmp_path):
    rows = [
        {"uid": f"{i:016x}", "dataset": "fmow", "img_name": f"fmow_x_{i}_0_rgb.jpg", "image_path": "/x.jpg",
         "labels": ["dam"], "meta": json.dumps(SOUTH), "width": 120, "height": 120}
        for i in range(6)
    ] + [{"uid": "ffffffff00000000", "dataset": "millionaid", "img_name": "millionaid_P1.jpg",
          "image_path": "/p.jpg", "labels": [], "meta": "{}", "width": 1, "height": 1}]
    read = tmp_path / "read.parquet"
    pq.write_table(pa.Table.from_pylist(rows), read)
    parts = [tmp_path / f"{p}.parquet" for p in ("0000", "0001", "0002")]
    rs3_metacaptions([str(read)], [str(p) for p in parts], seed=3)
    out = [r for p in parts for r in pq.read_table(p).to_pylist()]
    assert sorted(r["uid"] for r in out) == sorted(r["uid"] for r in rows)
    maid = next(r for r in out if r["dataset"] == "millionaid")
    assert maid["meta_caption"] == "" and json.loads(maid["geo"]) == {}
    fmow = next(r for r in out if r["dataset"] == "fmow")
    assert "São Paulo" in fmow["meta_caption"] and json.loads(fmow["geo"])["utm"] == "23K"
    with pytest.raises(ValueError):
        rs3_metacaptions([str(read)], [str(parts[0])], season_rule="tropical")
