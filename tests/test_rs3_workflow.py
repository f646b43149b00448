"""The demo through RS3 with Snakemake: generated inputs, tiny models, final.parquet and ledger."""

import json

import pyarrow.parquet as pq
import pytest
from conftest import snakemake

pytestmark = pytest.mark.workflow


def test_dry_run_plans_the_rs3_branch(tmp_path):
    plan = snakemake(tmp_path, "--cores", "2", "-n", "--quiet", "rules", "--", "results/rs3/final.parquet")
    for rule, count in (("rs3_caption", 4), ("rs3_metacaption", 1), ("rs3_demo_inputs", 1), ("rs3_tiny_models", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in plan.stdout.splitlines()), plan.stdout


def test_demo_through_rs3(demo_run):
    run_dir = demo_run
    final = pq.read_table(run_dir / "results/rs3/final.parquet")
    assert final.column_names[:10] == [
        "uid",
        "dataset",
        "img_name",
        "image_path",
        "caption",
        "top_cap",
        "ssl_cap",
        "meta_caption",
        "labels",
        "geo",
    ]
    rows = {r["img_name"]: r for r in final.to_pylist()}
    # 10 fMoW + 6 BigEarthNet + 4 MillionAID survive the readers' drops (see test_rs3_readers).
    assert sum(r["dataset"] == "fmow" for r in rows.values()) == 10
    assert sum(r["dataset"] == "bigearthnet" for r in rows.values()) == 6
    assert sum(r["dataset"] == "millionaid" for r in rows.values()) == 4
    fmow = rows["fmow_crop_field_7_0_rgb.jpg"]
    assert "São Paulo" in fmow["meta_caption"] and fmow["caption"].startswith(fmow["meta_caption"] + " ")
    assert json.loads(fmow["geo"])["season"] == "summer"
    maid = rows["millionaid_P0173410.jpg"]
    assert maid["meta_caption"] == "" and maid["caption"] in (maid["top_cap"], maid["ssl_cap"])
    assert (run_dir / rows["ben_0.jpg"]["image_path"]).exists()  # relative to the run folder
    stats = []
    for path in sorted((run_dir / "results/rs3").rglob("*.stats.json")):
        stats.extend(json.loads(path.read_text()))
    read = {s["source"]: s for s in stats if s["stage"] == "rs3_read"}
    assert read["bigearthnet"]["dropped"] == {"missing_band": 1, "missing_patch": 1, "unreadable_raster": 1}
    captioned = sum(s["kept"] for s in stats if s["stage"] == "rs3_caption")
    assert captioned == final.num_rows == sum(s["kept"] for s in read.values())
    candidates = sum(pq.read_table(p).num_rows for p in (run_dir / "results/rs3/caption").glob("*.candidates.parquet"))
    assert candidates == 20 * final.num_rows
    log = (run_dir / "logs/rs3_caption/0000.log").read_text()
    assert "RANDOM WEIGHTS" in log
