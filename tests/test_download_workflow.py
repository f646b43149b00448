"""The demo through URL filter, real HTTP downloads (a loopback demo web each job starts), image checks
and pHash dedup, with every row accounted for in the ledger."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TARGETS = ("results/pub11/dedup/kept.parquet", "results/stats/funnel.json")


def _require_merged_config():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    if "download" not in schema["properties"]:
        pytest.skip("config/schema.d/pub11_download.yaml is not merged into config/schema.yaml yet")


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory):
    _require_merged_config()
    workdir = tmp_path_factory.mktemp("dedup_demo")
    snakemake(workdir, "--cores", "2", *TARGETS)
    return workdir


def _drops(workdir, pattern):
    files = sorted(workdir.glob(pattern))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def test_dry_run_plans_one_download_and_image_job_per_part(tmp_path):
    _require_merged_config()
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2", *TARGETS).stdout)
    parts = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["parts"]
    assert jobs["url_filter"] == 1 and jobs["image_dedup"] == 1
    assert jobs["download_part"] == parts and jobs["images_part"] == parts


def test_bad_downloads_end_as_named_reasons(dedup_run):
    urls = {}
    for table in (pq.read_table(p) for p in dedup_run.glob("results/pub11/urldedup/*.parquet")):
        urls.update(zip(table.column("uid").to_pylist(), table.column("url").to_pylist()))
    outcome = {}
    for row in _drops(dedup_run, "results/pub11/download/*.drops.parquet") + _drops(
        dedup_run, "results/pub11/images/*.drops.parquet"
    ):
        outcome[urls[row["uid"]].rsplit("/", 1)[-1]] = row["reason"]
    assert outcome["zero-bytes.jpg"] == "invalid_empty"
    assert outcome["truncated.jpg"] == "invalid_decode"
    assert outcome["html-as-jpeg.jpg"] == "invalid_decode"
    assert outcome["tiny.jpg"] == "invalid_too_small"
    assert outcome["404.jpg"] == "download_failed"


def test_near_duplicate_copy_is_dropped_for_the_preferred_source(dedup_run):
    kept = pq.read_table(dedup_run / "results/pub11/dedup/kept.parquet").to_pylist()
    kept_by_uid = {row["uid"]: row for row in kept}
    url_of = {}
    for table in (pq.read_table(p) for p in dedup_run.glob("results/pub11/urldedup/*.parquet")):
        url_of.update(zip(table.column("uid").to_pylist(), table.column("url").to_pylist()))
    drops = _drops(dedup_run, "results/pub11/dedup/kept.drops.parquet")
    # The demo's COYO row re-serves a LAION-2B image under `?copy=1`; both sources are preferred, so
    # the stable hash of the uid decides which copy stays. Either way: one pair, the other one kept.
    assert len(drops) == 1 and drops[0]["reason"] == "duplicate_image"
    pair = {url_of[drops[0]["uid"]], kept_by_uid[drops[0]["detail"]]["url"]}
    original = min(pair, key=len)
    assert pair == {original, original + "?copy=1"}
    assert {drops[0]["source"], kept_by_uid[drops[0]["detail"]]["source"]} == {"laion2b", "coyo700m"}
    url_copies = _drops(dedup_run, "results/pub11/urldedup.drops.parquet")
    assert url_copies and all(kept_by_uid[d["detail"]]["source"] != "laioncoco" for d in url_copies
                              if d["reason"] == "duplicate_url" and d["detail"] in kept_by_uid)
    assert {"uid", "source", "url", "caption", "matched_keywords", "part", "tar", "member", "width", "height"} <= set(
        kept[0]
    )
    for row in kept:  # every kept image sits in its own part's shards
        assert (dedup_run / row["tar"]).is_file() and row["tar"].startswith(f"results/pub11/download/{row['part']}/")


def test_every_row_is_accounted_for_and_the_funnel_fills_in(dedup_run):
    stages = {}
    for path in list(dedup_run.glob("results/pub11/**/*.stats.json")) + [dedup_run / "results/pub11/urldedup.stats.json"]:
        for entry in json.loads(path.read_text()):
            if entry["stage"] in ("url_filter", "download", "invalid", "image_dedup"):
                key = (entry["stage"], entry["source"])
                total = stages.setdefault(key, {"rows_in": 0, "kept": 0, "dropped": 0})
                total["rows_in"] += entry["rows_in"]
                total["kept"] += entry["kept"]
                total["dropped"] += sum(entry["dropped"].values())
    kept = pq.read_table(dedup_run / "results/pub11/dedup/kept.parquet")
    assert sum(v["kept"] for (stage, _), v in stages.items() if stage == "image_dedup") == kept.num_rows
    for (stage, source), counts in stages.items():
        assert counts["rows_in"] == counts["kept"] + counts["dropped"], (stage, source)
    rows = json.loads((dedup_run / "results/stats/funnel.json").read_text())["rows"]
    funnel = {row["source"]: row for row in rows}
    total = funnel["total"]
    assert total["downloaded"] == sum(v["kept"] for (s, _), v in stages.items() if s == "download")
    assert total["invalid"] == 4 and total["download_failed"] >= 1 and total["duplicates"] >= 1
    assert total["url_duplicates"] >= 1
