import csv

import pytest
from assembly_fakes import make_run

from rs5m.assemble.dataset_stats import OUTPUTS, utm_cell, write_report
from rs5m.assemble.settings import StatsSettings
from rs5m.assemble.split import split_of
from rs5m.configured import config


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"))
    paths = write_report(
        run / "results/pub11/final.parquet",
        run / "results/rs3/final.parquet",
        run / "results/stats",
        StatsSettings.from_config(config({"split": {"val_fraction": 0.2}})),
        base_dir=run,
    )
    return run, paths


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_output_written(report):
    run, paths = report
    assert [p.name for p in paths] == list(OUTPUTS)
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rs3_counts(report):
    run, _ = report
    import pyarrow.parquet as pq

    rows = {r["dataset"]: r for r in _rows(run / "results/stats/rs3_counts.csv")}
    assert rows["ben"]["total"] == "10" and rows["total"]["total"] == "30"
    uids = [r["uid"] for r in pq.read_table(run / "results/rs3/final.parquet").to_pylist() if r["dataset"] == "fmow"]
    assert int(rows["fmow"]["val"]) == sum(split_of(u, 0.2) == "val" for u in uids)


def test_keywords_sizes_captions(report):
    run, _ = report
    import pyarrow.parquet as pq

    pub11 = pq.read_table(run / "results/pub11/final.parquet").to_pylist()
    keywords = {r["keyword"]: int(r["samples"]) for r in _rows(run / "results/stats/keyword_frequency.csv")}
    assert keywords == {k: sum(k in r["matched_keywords"] for r in pub11) for k in keywords} and len(keywords) == 3
    sizes = _rows(run / "results/stats/image_sizes.csv")
    rs3_sizes = {r["longest_side_px"]: int(r["samples"]) for r in sizes if r["subset"] == "rs3"}
    assert sum(rs3_sizes.values()) == 30 and rs3_sizes["1024-2048"] == 0
    assert rs3_sizes["0-64"] + rs3_sizes["64-128"] == 30  # fake RS3 images are 32, 48 or 120 px
    pub11_sizes = {r["longest_side_px"]: int(r["samples"]) for r in sizes if r["subset"] == "pub11"}
    assert pub11_sizes["128-256"] == sum(max(r["width"], r["height"]) == 128 for r in pub11)
    words = {
        r["words"]: int(r["samples"])
        for r in _rows(run / "results/stats/caption_lengths.csv")
        if r["subset"] == "pub11"
    }
    assert sum(words.values()) == len(pub11)


def test_utm_cells(report):
    run, _ = report
    rows = _rows(run / "results/stats/utm_zones.csv")
    assert sum(int(r["samples"]) for r in rows) == 22  # fmow 12 + ben 10 have a utm field; millionaid none
    assert {r["dataset"] for r in rows} == {"fmow", "ben"}
    assert utm_cell({"utm": "18T"}) == (18, "T")
    assert utm_cell({"utm_zone": "29N"}) == (29, "N")
    assert utm_cell({"lat": 48.85, "lon": 2.35}) == (31, "U")  # Paris
    assert utm_cell({"lat": -33.9, "lon": 151.2}) == (56, "H")  # Sydney
    assert utm_cell({"country": "France"}) is None
