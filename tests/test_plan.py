"""`rs5m plan`: the crawl's makespan bound as the pacer enforces it, and the jobs Snakemake plans."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, planned_jobs, snakemake

from rs5m.cli import main as rs5m_main
from rs5m.configured import config as configured
from rs5m.plan import crawl
from rs5m.plan.dag import PlannedJob
from rs5m.plan.plan import build_plan, load_yaml_data, plan_markdown
from rs5m.plan.settings import PlanSettings
from rs5m.pub11.crawl_pacing import HostPacer, host_part, part_rate

# A known host distribution: one big host, two middle ones, a long tail of single-URL hosts.
HOST_SIZES = {"big.example": 900, "mid-a.example": 250, "mid-b.example": 120, **{f"h{i}.example": 1 for i in range(60)}}
PARTS, PARTS_PER_HOST, RATE, BURST = 6, 4, 2.0, 4.0


def synthetic_urls() -> tuple[list[str], list[str]]:
    hosts, uids = [], []
    for host, n in HOST_SIZES.items():
        for i in range(n):
            hosts.append(host)
            uids.append(f"{host}-{i:05d}")
    return hosts, uids


def replayed_last_send(folder: Path, n: int, rate: float, burst: float, monkeypatch) -> float:
    """The send time of the n-th request a part's HostPacer grants when all n ask at t = 0."""
    monkeypatch.setattr("rs5m.pub11.crawl_pacing.time.time", lambda: 0.0)
    pacer = HostPacer(folder, rate, burst)
    return max(pacer.reserve("host") for _ in range(n))


def test_bound_is_the_pacers_last_send_time(tmp_path, monkeypatch):
    hosts, uids = synthetic_urls()
    counts = crawl.host_part_counts(hosts, uids, PARTS, PARTS_PER_HOST)
    rate, burst = part_rate(RATE, BURST, PARTS, PARTS_PER_HOST)
    expected = {}
    for (host, part), n in counts.items():
        if host in ("big.example", "mid-a.example"):
            last = replayed_last_send(tmp_path / f"{host}-{part}", n, rate, burst, monkeypatch)
            expected[host] = max(expected.get(host, 0.0), last)
    bounds = {b.host: b for b in crawl.host_bounds(counts, RATE, BURST, PARTS, PARTS_PER_HOST)}
    for host, seconds in expected.items():
        assert bounds[host].seconds == pytest.approx(seconds)
    assert bounds["big.example"].parts == PARTS_PER_HOST
    assert crawl.makespan_bound(counts, RATE, BURST, PARTS, PARTS_PER_HOST) == pytest.approx(expected["big.example"])
    # whatever the split, a host is never done before its URLs at the stage-wide rate
    assert expected["big.example"] >= (900 - BURST) / RATE
    assert crawl.makespan_bound(counts, 0, BURST, PARTS, PARTS_PER_HOST) == 0.0


def plan_settings(**download) -> PlanSettings:
    """The plan's settings for the synthetic crawl, with `download` keys replaced."""
    config = configured({"parts": PARTS, "download": {"parts_per_host": PARTS_PER_HOST, "per_host_rate": RATE}})
    config["download"].update(per_host_burst=BURST, **download)
    return dataclasses.replace(PlanSettings.from_config(config), threads={})


def write_url_parts(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The URL filter's parts of the synthetic host distribution, split by host_part."""
    hosts, uids = synthetic_urls()
    folder = tmp_path / "results" / "pub11" / "urldedup"
    folder.mkdir(parents=True)
    rows: dict[int, list[tuple[str, str]]] = {p: [] for p in range(PARTS)}
    for host, uid in zip(hosts, uids):
        rows[host_part(host, uid, PARTS, PARTS_PER_HOST)].append((uid, f"https://{host}/{uid}.jpg"))
    for part, pairs in rows.items():
        pq.write_table(
            pa.table({"uid": [u for u, _ in pairs], "url": [url for _, url in pairs]}), folder / f"{part:04d}.parquet"
        )
    return hosts, uids


def test_plan_of_a_synthetic_url_table(tmp_path):
    """The URL filter's parts of a known host distribution: the plan's bound, hosts and histogram."""
    hosts, uids = write_url_parts(tmp_path)
    big_parts = Counter(
        host_part("big.example", u, PARTS, PARTS_PER_HOST) for h, u in zip(hosts, uids) if h == "big.example"
    )
    _, burst = part_rate(RATE, BURST, PARTS, PARTS_PER_HOST)
    expected = (max(big_parts.values()) - burst) * PARTS_PER_HOST / RATE

    jobs = [PlannedJob("download_part", (f"d{p}",)) for p in range(PARTS)] + [PlannedJob("url_filter", ("u",))]
    plan = build_plan(tmp_path, jobs, plan_settings(), [], False, None)
    assert "adaptive" not in plan["crawl"] and "Adaptive" not in plan_markdown(plan)
    c = plan["crawl"]
    assert c["urls"] == sum(HOST_SIZES.values()) and c["hosts"] == len(HOST_SIZES)
    assert c["makespan_bound_s"] == pytest.approx(expected)
    assert [h["host"] for h in c["setting_hosts"]] == ["big.example"]
    assert dict(map(tuple, c["histogram"])) == {1: 60, 120: 1, 250: 1, 900: 1}
    configured = c["settings"][0]
    assert configured["setting"] == "configured" and configured["bound_s"] == pytest.approx(expected)
    doubled = next(s for s in c["settings"] if s["setting"] == "per_host_rate x2")
    assert doubled["bound_s"] == pytest.approx(expected / 2)
    assert {r["rule"]: r["jobs"] for r in plan["stages"]} == {"download_part": PARTS, "url_filter": 1}
    download = next(r for r in plan["stages"] if r["rule"] == "download_part")
    rate = load_yaml_data("rates.yaml")["rules"]["download_part"]
    assert download["items"] == sum(HOST_SIZES.values())
    assert download["cpu_hours"] == pytest.approx(
        (PARTS * rate["job_s"] + sum(HOST_SIZES.values()) / rate["cpu_per_s"]) / 3600
    )


def test_adaptive_plan_reports_the_best_and_the_worst_case(tmp_path):
    """Under adaptive politeness a host's pace lies in [min_rate, per_host_rate_max], split over its
    parts: the best case paces every host at per_host_rate_max (with the part's burst), the worst at
    min_rate without bursts; each names the hosts that set it."""
    hosts, uids = write_url_parts(tmp_path)
    fullest = Counter(host_part(h, u, PARTS, PARTS_PER_HOST) for h, u in zip(hosts, uids) if h == "big.example")
    n = max(fullest.values())  # the big host's URLs in its fullest part
    settings = plan_settings(politeness="adaptive", min_rate=0.25, per_host_rate_max=8.0)
    plan = build_plan(tmp_path, [PlannedJob("url_filter", ("u",))], settings, [], False, None)
    c = plan["crawl"]
    # 4 parts share the big host: each may send 8 / 4 req/s after a burst of max(1, 4 / 4) = 1
    best = (n - 1) * PARTS_PER_HOST / 8.0
    worst = (n - 1) * PARTS_PER_HOST / 0.25
    assert c["adaptive"]["best_case"]["makespan_bound_s"] == pytest.approx(best)
    assert c["adaptive"]["worst_case"]["makespan_bound_s"] == pytest.approx(worst)
    assert c["makespan_bound_s"] == pytest.approx(best)
    for case in ("best_case", "worst_case"):
        assert [h["host"] for h in c["adaptive"][case]["setting_hosts"]] == ["big.example"]
    mid = next(b for b in c["top_hosts"] if b["host"] == "mid-a.example")
    assert mid["seconds"] == pytest.approx((mid["max_part_urls"] - 1) * PARTS_PER_HOST / 8.0)
    doubled = next(s for s in c["settings"] if s["setting"] == "per_host_rate_max x2")
    assert doubled["bound_s"] == pytest.approx(best / 2)
    text = plan_markdown(plan)
    assert f"({best:,.1f} s), set by big.example ({HOST_SIZES['big.example']:,} URLs)" in text
    assert f"({worst:,.1f} s), set by big.example" in text


def test_plan_command_counts_the_jobs_snakemake_plans(tmp_path, capsys):
    """On the demo config and on one with another fan-out: the plan's jobs are `snakemake -n`'s."""
    sample = tmp_path / "urls.csv"
    sample.write_text("url\n" + "".join(f"https://host{i % 3}.example/{i}.jpg\n" for i in range(30)))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["parts"] = 7
    config["sources"]["laion2b"]["files_per_job"] = 2
    other = tmp_path / "parts7.yaml"
    other.write_text(yaml.safe_dump(config))
    for name, configfiles in (("demo", []), ("parts7", [str(other)])):
        run_dir = tmp_path / name
        run_dir.mkdir()
        args = ["plan", str(run_dir), "--url-sample", str(sample)]
        assert rs5m_main(args + (["--configfile", *configfiles] if configfiles else [])) == 0
        assert "Makespan bound" in capsys.readouterr().out
        plan = json.loads((run_dir / "results" / "plan" / "plan.json").read_text())
        extra = ["--configfile", *configfiles] if configfiles else []
        expected = planned_jobs(snakemake(run_dir, "-n", "--cores", "1", *extra).stdout)
        assert {r["rule"]: r["jobs"] for r in plan["stages"]} == expected
        assert plan["totals"]["jobs"] == sum(expected.values())
        parts = config["parts"] if configfiles else 4
        assert expected["download_part"] == expected["score_part"] == parts
        assert expected["keyword_filter"] == (12 if configfiles else 13)  # laion2b's two files in one chunk
        assert (run_dir / "results" / "plan" / "hosts.png").stat().st_size > 0
        # nothing has run: the sample's 30 URLs, the PUB11 volumes after them by the SPEC 2.2 ratios, no RS3 guess
        assert plan["volumes"]["urls"] == 30 and plan["volume_origin"]["downloaded"].startswith("estimated")
        assert "rs3_images" not in plan["volumes"]
        assert (run_dir / "results" / "plan" / "plan.md").read_text().startswith("# Build plan")


def test_every_measured_rate_is_in_the_benchmark_results():
    """rates.yaml keeps up with benchmarks/RESULTS.md: every figure a measured rate cites is there."""
    results = (REPO / "benchmarks" / "RESULTS.md").read_text()
    rates = load_yaml_data("rates.yaml")
    for rule, rate in rates["rules"].items():
        assert rate["machine"] in rates["machines"], rule
        if rate["measured"]:
            for figure in re.findall(r"\d[\d,.]*\d|\d", rate["source"].split(":", 1)[1]):
                assert figure in results, f"{rule}: {figure} not in RESULTS.md"
