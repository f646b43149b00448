"""Meta-caption fields and templates: hemispheres, missing keys, odd timestamps, non-ASCII places."""

import json
from datetime import timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_defaults import pub11_metacaption_args, schema_defaults

from rs5m import geo
from rs5m.metacaption import bigearthnet_fields, fmow_fields, meta_caption, render
from rs5m.pub11.pub11_metacaption import (
    cc3m_select_labels,
    parse_cc3m_labels_line,
    pub11_meta_rows,
    pub11_metacaptions,
    read_cc3m_labels,
)
from rs5m.rs3.rs3_metacaption import rs3_metacaptions
from rs5m.settings import MetacaptionSettings

SEASON_RULE = schema_defaults("metacaption")["season_rule"]
SEED = schema_defaults("metacaption")["seed"]

REAL_WKT = (
    'PROJCS["WGS 84 / UTM zone 29N",GEOGCS["WGS 84",DATUM["WGS_1984"]],'
    'PROJECTION["Transverse_Mercator"],AUTHORITY["EPSG","32629"]]'
)


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
    assert (
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
    ) == expected


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
        "a in fall shows dam",
        2,
    )
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
    fields = fmow_fields(SOUTH, season_rule=SEASON_RULE)
    assert fields["city"] == "São Paulo" and fields["country"] == "Brazil"
    assert fields["season"] == "summer"  # January south of the equator
    assert fields["cells"] == "top-left and top-center"
    assert fields["category"] == "crop field"
    assert fmow_fields(SOUTH, season_rule="northern")["season"] == "winter"
    caption = meta_caption("fmow", fields, "uid-1", seed=0)
    assert "São Paulo, Brazil" in caption and "summer" in caption and "23K" in caption
    assert "January 14, 2016" in caption


def test_fmow_missing_fields_drop_their_clause_only():
    fields = fmow_fields(
        {"utm": "32T", "bounding_boxes": "not a list", "gsd": "n/a", "timestamp": "garbage"}, season_rule=SEASON_RULE
    )
    caption = meta_caption("fmow", fields, "uid-2", SEED)
    assert "UTM zone 32T" in caption
    for absent in ("ground sample", "pixel", "acquired", "dated", "azimuth", "cloud"):
        assert absent not in caption
    assert meta_caption("fmow", fmow_fields({}, season_rule=SEASON_RULE), "uid-3", SEED) == ""
    only_category = meta_caption("fmow", fmow_fields({}, category_hint="dam", season_rule=SEASON_RULE), "uid-4", SEED)
    assert "dam" in only_category and "None" not in only_category


def test_seeded_template_choice():
    fields = fmow_fields(SOUTH, season_rule=SEASON_RULE)
    assert meta_caption("fmow", fields, "same", seed=1) == meta_caption("fmow", fields, "same", seed=1)
    captions = {meta_caption("fmow", fields, f"uid-{i}", seed=1) for i in range(30)}
    assert len(captions) > 3
    assert {meta_caption("fmow", fields, "u", seed=s) for s in range(30)} != {meta_caption("fmow", fields, "u", 0)}


def test_bigearthnet_fields_from_json():
    record = {
        "labels": ["Sea and ocean", "Beaches, dunes, sands"],
        "projection": REAL_WKT,
        "acquisition_date": "2017-07-18 11:25:01",
    }
    fields = bigearthnet_fields(record, SEASON_RULE)
    assert fields["labels"] == "'sea and ocean, beaches, dunes, sands'"
    assert (fields["utm"], fields["season"], fields["time"]) == ("29N", "summer", "11:25 UTC")
    south = bigearthnet_fields({**record, "projection": 'PROJCS["WGS 84 / UTM zone 56S"]'}, SEASON_RULE)
    assert south["season"] == "winter"
    caption = meta_caption("bigearthnet", bigearthnet_fields({"labels": []}, SEASON_RULE), "u", SEED)
    assert caption == ""


def test_cc3m_label_rule():
    labels = ["a", "b", "c", "d"]
    assert cc3m_select_labels(labels, [0.95, 0.5, 0.91, 0.99]) == ["a", "c", "d"]
    assert cc3m_select_labels(labels, [0.95, 0.92, 0.91, 0.99]) == ["a", "b", "c"]
    assert cc3m_select_labels(labels, [0.5, 0.95, 0.1, 0.2]) == ["b"]
    assert cc3m_select_labels(labels, [0.5, 0.6, 0.7, 0.2]) == ["c"]
    assert parse_cc3m_labels_line("cap\thttp://x/1.jpg\tsky,field\t/m/1,/m/2\t0.97,0.5") == (
        "http://x/1.jpg",
        ["sky", "field"],
        [0.97, 0.5],
    )
    assert parse_cc3m_labels_line("short\tline") is None


def test_pub11_meta_rows_yfcc_cc3m_redcaps():
    rows = [
        {
            "uid": "y1",
            "source": "yfcc15m",
            "url": "u1",
            "src_latitude": "-33.86",
            "src_longitude": "151.2",
            "src_date_taken": "2012-07-04 15:30:00.0",
        },
        {
            "uid": "y2",
            "source": "yfcc15m",
            "url": "u2",
            "src_latitude": "",
            "src_longitude": "",
            "src_date_taken": "2010-01-02 00:00:00.0",
        },
        {"uid": "c1", "source": "cc3m", "url": "http://x/1.jpg"},
        {"uid": "r1", "source": "redcaps", "url": "u4", "src_created_utc": 1577836800.0},
        {"uid": "l1", "source": "laion2b", "url": "u5"},
    ]
    out = pub11_meta_rows(
        rows, seed=0, season_rule="hemisphere", cc3m_labels={"http://x/1.jpg": ["aerial photography", "field"]}
    )
    captions = [row["meta_caption"] for row in out]
    assert "Australia" in captions[0] and "winter" in captions[0]  # July in Sydney
    assert "Australia" not in captions[1] and "January 2, 2010" in captions[1]
    assert "aerial photography, field" in captions[2] and out[2]["labels"] == ["aerial photography", "field"]
    assert "January 1, 2020" in captions[3]
    assert captions[4] == "" and out[4]["geo"] == "{}"
    assert json.loads(out[0]["geo"])["country"] == "Australia"


def test_read_cc3m_labels_filters_and_skips_bad_lines(tmp_path, caplog):
    path = tmp_path / "labels.tsv"
    path.write_text(
        "cap\thttp://x/1.jpg\tsky,field,road\t/m/1,/m/2,/m/3\t0.97,0.95,0.99\n"
        "cap\thttp://x/2.jpg\tsky\t/m/1\tnot-a-number\n"
        "short line\n\n"
        "cap\thttp://x/3.jpg\tsky,field\t/m/1,/m/2\t0.3,0.4\n",
        encoding="utf-8",
    )
    assert read_cc3m_labels(path) == {"http://x/1.jpg": ["sky", "field", "road"], "http://x/3.jpg": ["field"]}
    assert read_cc3m_labels(path, {"http://x/3.jpg"}) == {"http://x/3.jpg": ["field"]}
    assert "2 malformed lines skipped (first: line 2)" in caplog.text


def _pub11_stage_inputs(tmp_path):
    """final.parquet and two URL-dedup parts in the shapes of the real stages."""
    natives = {
        "y_south": {"latitude": "-33.87", "longitude": "151.21", "date_taken": "2012-07-04 15:30:00.0"},
        "y_north": {"latitude": "64.15", "longitude": "-21.94", "date_taken": "2012-07-04 15:30:00.0"},
        "y_nogeo": {"latitude": "", "longitude": "", "date_taken": "2012-07-04 15:30:00.0"},
        "y_baddate": {"latitude": "48.86", "longitude": "2.35", "date_taken": "null"},
        "c_labels": {"url": "http://x/c1.jpg"},
        "c_none": {"url": "http://x/c2.jpg"},
        "r_epoch": {"created_utc": 1593820800.0},
        "r_null": {"created_utc": None},
        "l_other": {"url": "http://x/l.jpg"},
        "dropped": {"latitude": "1", "longitude": "1"},
    }
    sources = {"y": "yfcc15m", "c": "cc3m", "r": "redcaps", "l": "laion2b", "d": "yfcc15m"}
    rows = [
        {
            "uid": uid,
            "source": sources[uid[0]],
            "url": f"http://x/{uid}.jpg" if uid[0] != "c" else native["url"],
            "native": json.dumps(native),
        }
        for uid, native in natives.items()
    ]
    parts = [tmp_path / "0000.parquet", tmp_path / "0001.parquet"]
    pq.write_table(pa.Table.from_pylist(rows[::2]), parts[0])
    pq.write_table(pa.Table.from_pylist(rows[1::2]), parts[1])
    # `y_lost` is kept but absent from the URL-dedup parts: its row is written without fields.
    final = [{k: r[k] for k in ("uid", "source", "url")} for r in rows if r["uid"] != "dropped"]
    final.append({"uid": "y_lost", "source": "yfcc15m", "url": "http://x/lost.jpg"})
    pq.write_table(pa.Table.from_pylist(final), tmp_path / "final.parquet")
    labels = tmp_path / "labels.tsv"
    labels.write_text(
        "cap\thttp://x/c1.jpg\tbeach,sea,sand,sky\t/m/1,/m/2,/m/3,/m/4\t0.99,0.2,0.95,0.92\nbroken\n", encoding="utf-8"
    )
    return tmp_path / "final.parquet", [str(p) for p in parts], labels


@pytest.mark.parametrize("season_rule", ["hemisphere", "northern"])
def test_pub11_metacaptions_stage(tmp_path, season_rule):
    final, parts, labels = _pub11_stage_inputs(tmp_path)
    stats = pub11_metacaptions(
        final,
        parts,
        tmp_path / "out.parquet",
        tmp_path / "stats.json",
        MetacaptionSettings(seed=1, season_rule=season_rule),
        cc3m_labels=labels,
        threads=1,
        memory_limit=None,
    )
    out = {row["uid"]: row for row in pq.read_table(tmp_path / "out.parquet").to_pylist()}
    assert list(out) == sorted(out)  # uid order
    assert set(out) == {
        "y_south",
        "y_north",
        "y_nogeo",
        "y_baddate",
        "y_lost",
        "c_labels",
        "c_none",
        "r_epoch",
        "r_null",
    }  # kept rows of the three sources only
    south, north = json.loads(out["y_south"]["geo"]), json.loads(out["y_north"]["geo"])
    assert south["country"] == "Australia" and north["country"] == "Iceland"
    assert north["season"] == "summer"
    assert south["season"] == ("winter" if season_rule == "hemisphere" else "summer")
    assert "Iceland" in out["y_north"]["meta_caption"]
    nogeo = json.loads(out["y_nogeo"]["geo"])
    assert "country" not in nogeo and nogeo["date"] == "July 4, 2012" and out["y_nogeo"]["meta_caption"]
    baddate = json.loads(out["y_baddate"]["geo"])
    assert baddate["country"] == "France" and "date" not in baddate and "France" in out["y_baddate"]["meta_caption"]
    assert out["y_lost"]["meta_caption"] == "" and out["y_lost"]["geo"] == "{}"
    assert out["c_labels"]["labels"] == ["beach", "sand", "sky"]
    assert "beach, sand, sky" in out["c_labels"]["meta_caption"]
    assert out["c_none"]["labels"] == [] and out["c_none"]["meta_caption"] == ""
    assert "July 4, 2020" in out["r_epoch"]["meta_caption"] and out["r_null"]["meta_caption"] == ""
    assert stats == json.loads((tmp_path / "stats.json").read_text())
    assert stats["yfcc15m"]["kept"] == 5 and stats["yfcc15m"]["meta_caption"] == 4
    assert stats["yfcc15m"]["with_country"] == 3 and stats["cc3m"] == {"kept": 2, "meta_caption": 1, "with_labels": 1}
    assert stats["redcaps"]["meta_caption"] == 1 and "laion2b" not in stats


def test_pub11_metacaptions_without_labels_file_and_bad_rule(tmp_path):
    final, parts, _ = _pub11_stage_inputs(tmp_path)
    pub11_metacaptions(final, parts, tmp_path / "out.parquet", **pub11_metacaption_args())
    out = {row["uid"]: row for row in pq.read_table(tmp_path / "out.parquet").to_pylist()}
    assert out["c_labels"]["meta_caption"] == "" and out["y_north"]["meta_caption"]
    with pytest.raises(ValueError, match="season_rule"):
        pub11_metacaptions(
            final,
            parts,
            tmp_path / "x.parquet",
            **pub11_metacaption_args(settings=MetacaptionSettings(seed=0, season_rule="southern")),
        )


def test_rs3_metacaptions_parts(tmp_path):
    rows = [
        {
            "uid": f"{i:016x}",
            "dataset": "fmow",
            "img_name": f"fmow_x_{i}_0_rgb.jpg",
            "image_path": "/x.jpg",
            "labels": ["dam"],
            "meta": json.dumps(SOUTH),
            "width": 120,
            "height": 120,
        }
        for i in range(6)
    ] + [
        {
            "uid": "ffffffff00000000",
            "dataset": "millionaid",
            "img_name": "millionaid_P1.jpg",
            "image_path": "/p.jpg",
            "labels": [],
            "meta": "{}",
            "width": 1,
            "height": 1,
        }
    ]
    read = tmp_path / "read.parquet"
    pq.write_table(pa.Table.from_pylist(rows), read)
    parts = [tmp_path / f"{p}.parquet" for p in ("0000", "0001", "0002")]
    rs3_metacaptions([str(read)], [str(p) for p in parts], MetacaptionSettings(seed=3, season_rule="hemisphere"))
    out = [r for p in parts for r in pq.read_table(p).to_pylist()]
    assert sorted(r["uid"] for r in out) == sorted(r["uid"] for r in rows)
    maid = next(r for r in out if r["dataset"] == "millionaid")
    assert maid["meta_caption"] == "" and json.loads(maid["geo"]) == {}
    fmow = next(r for r in out if r["dataset"] == "fmow")
    assert "São Paulo" in fmow["meta_caption"] and json.loads(fmow["geo"])["utm"] == "23K"
    with pytest.raises(ValueError):
        rs3_metacaptions([str(read)], [str(parts[0])], MetacaptionSettings(seed=0, season_rule="tropical"))
