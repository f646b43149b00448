"""`rs5m status` on a finished demo run and on one stopped half-way: done/total jobs per rule."""

from __future__ import annotations

import base64
import json
import shutil

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
