"""`rs5m status` on a finished demo run and on one stopped half-way: done/total jobs per rule."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from conftest import planned_jobs, snakemake

from rs5m.cli import main as rs5m_main


def status_of(run_dir, capsys) -> dict:
    assert rs5m_main(["status", str(run_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def mark_incomplete(run_dir, output: str) -> None:
    """What Snakemake leaves for an output whose job was running when the run was killed."""
    marker = run_dir / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(output.encode()).decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"external_jobid": null}')


def test_status_of_a_finished_and_of_a_stopped_demo(demo_run, tmp_path, capsys):
    expected = planned_jobs(snakemake(demo_run, "-n", "--forceall", "--nolock").stdout)
    finished = status_of(demo_run, capsys)
    assert {p["rule"]: p["total"] for p in finished["jobs"]} == expected
    assert all(p["done"] == p["total"] and p["running"] == 0 for p in finished["jobs"])
    assert finished["done"] == finished["total"] == sum(expected.values())
    wall = {p["rule"]: p["measured_s"] for p in finished["jobs"]}
    assert all(wall[rule] > 0 for rule in ("keyword_filter", "download_part", "score_part"))
    download = finished["download"]
    assert download["shards"] >= 4 and 0 < download["successes"] <= download["attempted"]
    # the demo's one host, from the fetch times its download processes appended (robots.txt and
    # redirect hops are requests too; its stalling and failing cases count as failed)
    (demo_host,) = finished["slowest_hosts"]
    assert demo_host["host"] == "demo.rs5m.test" and demo_host["requests"] >= download["attempted"]
    assert 0 < demo_host["errors"] < demo_host["requests"] and demo_host["mean_fetch_s"] > 0
    kept = {(s["stage"], s["source"]): s for s in finished["sources"]}
    laion = kept[("keyword_filter", "laion2b")]
    assert laion["top_drops"][0][0] == "no_keyword_match" and 0 < laion["success_rate"] < 1

    # Stopped half-way: the last stages never ran, two scoring jobs did not finish, one was
    # running (its output written but still marked incomplete) when the run was killed.
    stopped = tmp_path / "stopped"
    shutil.copytree(demo_run, stopped, symlinks=True)
    for path in ["results/shards", "results/metafiles", "results/stats", "results/pub11/final.parquet"]:
        target = stopped / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for part in ("0002", "0003"):
        (stopped / f"results/pub11/scores/{part}.parquet").unlink()
    mark_incomplete(stopped, "results/pub11/scores/0001.parquet")
    by_rule = {p["rule"]: p for p in status_of(stopped, capsys)["jobs"]}
    assert (by_rule["score_part"]["done"], by_rule["score_part"]["running"], by_rule["score_part"]["total"]) == (
        1,
        1,
        4,
    )
    assert by_rule["download_part"]["done"] == by_rule["download_part"]["total"] == 4
    for rule in ("shards", "metafiles", "funnel", "dataset_stats", "audit", "decontaminate_pub11", "all"):
        assert by_rule[rule]["done"] == 0, rule
    assert by_rule["keyword_filter"]["done"] == expected["keyword_filter"]
    assert rs5m_main(["status", str(stopped)]) == 0
    assert "score_part" in capsys.readouterr().out


def test_slowest_hosts_from_the_fetch_times_the_download_processes_append(tmp_path):
    """Two processes of one part and one of another append their tallies; a line still being
    written is skipped; the status sums per host and ranks by mean fetch time, read-only."""
    from rs5m.plan.status import build_status, status_text
    from rs5m.pub11.crawl_pacing import HostTimes

    timing = tmp_path / "results" / "pub11" / "host_timing"
    first, second, other = HostTimes(timing / "0000"), HostTimes(timing / "0000"), HostTimes(timing / "0001")
    assert first.path != second.path  # a file per process
    for seconds in (0.2, 0.4):
        first.record("Slow.Example.", seconds, error=False)
    second.record("slow.example", 0.9, error=True)
    for _ in range(4):
        other.record("fast.example", 0.01, error=False)
    first.record("mid.example", 0.1, error=False)
    for times in (first, second, other):
        times.flush()
    with open(other.path, "a") as half_written:
        half_written.write("fast.example\t1000\t9999")  # no newline yet: skipped
    before = {p: p.stat().st_mtime_ns for p in timing.rglob("*")}

    status = build_status(tmp_path, [], [], window_s=60, top=2)
    slowest = status["slowest_hosts"]
    assert [h["host"] for h in slowest] == ["slow.example", "mid.example"]
    assert slowest[0]["requests"] == 3 and slowest[0]["errors"] == 1
    assert slowest[0]["mean_fetch_s"] == pytest.approx(0.5)
    fast = build_status(tmp_path, [], [], window_s=60, top=3)["slowest_hosts"][-1]
    assert fast == {"host": "fast.example", "requests": 4, "mean_fetch_s": pytest.approx(0.01), "errors": 0}
    assert "slowest hosts (mean fetch): slow.example 0.50 s x 3 (1 failed), mid.example 0.10 s x 1" in status_text(
        status
    )
    assert {p: p.stat().st_mtime_ns for p in timing.rglob("*")} == before
