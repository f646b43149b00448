"""The demo through URL filter, real HTTP downloads (a loopback demo web each job starts), image checks
and pHash dedup, with every row accounted for in the ledger; then the retry of failed downloads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, planned_jobs, snakemake
from test_download import EXPECTED

from rs5m.assemble.funnel import build_funnel
from rs5m.demo.demo_metadata import BAD_PATHS, DEMO_HOST, UNSAFE_URLS
from rs5m.ledger import read_stats

pytestmark = pytest.mark.workflow

TARGET = "results/pub11/dedup/kept.parquet"
MY_STAGES = ("url_filter", "download", "invalid", "image_dedup")


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dedup_demo")
    snakemake(workdir, "--cores", "2", TARGET)
    return workdir


def _table(workdir, pattern) -> list[dict]:
    files = sorted(workdir.glob(pattern))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def _outcomes(workdir) -> dict[str, tuple[str, str] | str]:
    """uid -> (stage, reason) or "kept", over every stage from the URL filter to dedup."""
    outcome = {}
    for pattern in (
        "results/pub11/urldedup.drops.parquet",
        "results/pub11/download/*.drops.parquet",
        "results/pub11/images/*.drops.parquet",
        "results/pub11/dedup/kept.drops.parquet",
    ):
        for row in _table(workdir, pattern):
            assert row["uid"] not in outcome, row
            outcome[row["uid"]] = (row["stage"], row["reason"])
    for row in _table(workdir, TARGET):
        assert row["uid"] not in outcome, row
        outcome[row["uid"]] = "kept"
    return outcome


def _uid_of(workdir) -> dict[str, str]:
    """url -> uid of the keyword stage's rows (the demo's bad and unsafe URLs occur once)."""
    uids = {}
    for path in workdir.glob("results/pub11/metadata/*/*.parquet"):
        if path.name.count(".") == 1:
            table = pq.read_table(path, columns=["uid", "url"])
            uids.update(zip(table.column("url").to_pylist(), table.column("uid").to_pylist()))
    return uids


def test_dry_run_plans_one_download_and_image_job_per_part(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--cores", "2", TARGET).stdout)
    parts = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["parts"]
    assert jobs["url_filter"] == 1 and jobs["image_dedup"] == 1
    assert jobs["download_part"] == parts and jobs["images_part"] == parts


def test_bad_downloads_and_unsafe_urls_end_as_named_reasons(dedup_run):
    outcome, uid_of = _outcomes(dedup_run), _uid_of(dedup_run)
    for path in BAD_PATHS:
        case = path.rsplit("/", 1)[-1].split(".")[0]
        expected = ("download", "download_failed") if path.startswith("/flaky/") else EXPECTED[case]
        assert outcome[uid_of[DEMO_HOST + path]] == expected, path
    for url in UNSAFE_URLS:
        if url.startswith("file:"):  # the keyword stage already refuses other schemes
            continue
        assert outcome[uid_of[url]] == ("url_filter", "blocked_url"), url
    urldedup = {row["uid"] for row in _table(dedup_run, "results/pub11/urldedup/*.parquet")}
    assert set(outcome) == urldedup | {d["uid"] for d in _table(dedup_run, "results/pub11/urldedup.drops.parquet")}


def test_near_duplicate_copy_is_one_group(dedup_run):
    kept = {row["uid"]: row for row in _table(dedup_run, TARGET)}
    url_of = {row["uid"]: row["url"] for row in _table(dedup_run, "results/pub11/urldedup/*.parquet")}
    copies = [
        d
        for d in _table(dedup_run, "results/pub11/dedup/kept.drops.parquet")
        if "?copy=" in url_of[d["uid"]] or "?copy=" in kept[d["detail"]]["url"]
    ]
    # The demo's COYO row re-serves a LAION-2B image under `?copy=1`; both sources are preferred, so
    # the stable hash of the uid decides which copy stays. Either way: one pair, the other one kept.
    assert len(copies) == 1 and copies[0]["reason"] == "duplicate_image"
    pair = {url_of[copies[0]["uid"]], kept[copies[0]["detail"]]["url"]}
    original = min(pair, key=len)
    assert pair == {original, original + "?copy=1"}
    columns = {"uid", "source", "url", "caption", "matched_keywords", "part", "tar", "member", "width", "height"}
    assert columns <= set(next(iter(kept.values())))
    for row in kept.values():  # every kept image sits in its own part's shards
        assert (dedup_run / row["tar"]).is_file() and row["tar"].startswith(f"results/pub11/download/{row['part']}/")


def test_ledger_chain_holds_for_every_source(dedup_run):
    files = list(dedup_run.glob("results/pub11/**/*.stats.json"))  # ** includes results/pub11 itself
    stats = [s for s in read_stats(files) if s.stage in ("keyword_filter", *MY_STAGES)]
    funnel = build_funnel(stats)
    assert funnel.consistent, funnel.problems
    total = funnel.rows[-1]
    kept = pq.read_table(dedup_run / TARGET).num_rows
    assert (
        total["after_keyword_filter"] - total["url_duplicates"] - total["blocked_urls"] - total["download_failed"]
        == total["downloaded"]
    )
    assert total["downloaded"] - total["invalid"] - total["duplicates"] == kept
    assert total["invalid"] == sum(1 for e in EXPECTED.values() if e != "kept" and e[0] == "invalid")


def test_retry_refetches_only_failed_urls_and_reruns_what_follows(dedup_run):
    flaky_uid = _uid_of(dedup_run)[DEMO_HOST + next(p for p in BAD_PATHS if p.startswith("/flaky/"))]
    retried = ("download_failed", "rate_limited")  # what retry_failed_downloads asks again
    failed = [d for d in _table(dedup_run, "results/pub11/download/*.drops.parquet") if d["reason"] in retried]
    before = {p: p.stat().st_mtime_ns for p in dedup_run.glob("results/pub11/download/*/*.tar")}
    snakemake(dedup_run, "--cores", "2", "retry_failed_downloads", "--forcerun", "download_retry")
    reports = [json.loads(p.read_text()) for p in dedup_run.glob("results/pub11/download/*.retry.json")]
    assert sum(r["retried"] for r in reports) == len(failed)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())  # nothing fetched again
    jobs = planned_jobs(snakemake(dedup_run, "-n", "--cores", "2", TARGET).stdout)
    assert jobs.get("images_part", 0) >= 1 and jobs["image_dedup"] == 1 and "download_part" not in jobs
    snakemake(dedup_run, "--cores", "2", TARGET)
    outcome = _outcomes(dedup_run)
    assert outcome[flaky_uid] == "kept"  # its second request succeeds
    still_failed = [d for d in _table(dedup_run, "results/pub11/download/*.drops.parquet") if d["reason"] in retried]
    assert len(still_failed) == len(failed) - 1
