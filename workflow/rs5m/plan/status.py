"""`rs5m status`: where a build stands, read from its folder while it runs (or after).

Per rule the jobs done of the planned total (a job is done when every output exists and none is
marked incomplete in `.snakemake/incomplete`, where Snakemake marks the outputs of the jobs it runs),
the jobs running, their wall seconds so far (`benchmark:` files) beside the plan's, the download
rate over the last minutes (img2dataset's per-shard stats), success rate and top drop reasons per
source from the ledgers, the hosts that fail most, the slowest hosts by mean fetch time (the fetch
times per host the download jobs append to results/pub11/host_timing/), and an ETA from the
plan's per-rule hours.
Read-only: it opens files for reading and takes no lock, so it can watch a folder that a Snakemake
(or SLURM) head is writing; files half-written at that moment are skipped.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from rs5m.hosts import url_host
from rs5m.plan.dag import PlannedJob

# Ledger stages in DAG order (their `stage` field), for the per-source table.
STAGE_ORDER = [
    "keyword_filter",
    "url_filter",
    "download",
    "invalid",
    "image_dedup",
    "outliers",
    "rs3_read",
    "rs3_caption",
]


def incomplete_outputs(run_dir: str | Path) -> set[str]:
    """Outputs Snakemake has marked incomplete (the jobs running now, or killed while running).

    Each marker is a file named by the urlsafe base64 of the output path, split into chunks of at
    most 254 characters, all but the last prefixed with "@" (snakemake.persistence.file).
    """
    root = Path(run_dir) / ".snakemake" / "incomplete"
    found = set()
    for folder, _dirs, files in os.walk(root):
        for name in files:
            parts = Path(folder, name).relative_to(root).parts
            encoded = "".join(p.removeprefix("@") for p in parts)
            try:
                found.add(base64.urlsafe_b64decode(encoded).decode())
            except (ValueError, UnicodeDecodeError):
                continue  # not a marker (e.g. `migration_underway`)
    return found


def job_progress(run_dir: str | Path, jobs: Sequence[PlannedJob]) -> list[dict[str, Any]]:
    """Per rule (in plan order): total jobs, done, running (outputs marked incomplete)."""
    run_dir = Path(run_dir)
    marked = incomplete_outputs(run_dir)
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        row = rows.setdefault(job.rule, {"rule": job.rule, "total": 0, "done": 0, "running": 0})
        row["total"] += 1
        if any(o in marked for o in job.outputs):
            row["running"] += 1
        elif job.outputs and all((run_dir / o).exists() for o in job.outputs):
            row["done"] += 1
    # a rule without outputs (`all`) is done when everything else is
    others_done = all(
        r["done"] == r["total"] for r in rows.values() if any(j.outputs for j in jobs if j.rule == r["rule"])
    )
    for job in jobs:
        if not job.outputs and others_done:
            rows[job.rule]["done"] = rows[job.rule]["total"]
    return list(rows.values())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # being written right now


def download_rate(run_dir: str | Path, window_s: float, now: float) -> dict[str, Any]:
    """Images fetched per second over the last `window_s` seconds, and overall, from the shard stats."""
    shards = []
    for path in Path(run_dir).glob("results/pub11/download/*/*_stats.json"):
        stats = _read_json(path)
        if stats and "end_time" in stats:
            shards.append(stats)
    if not shards:
        return {"shards": 0}
    start = min(s["start_time"] for s in shards)
    end = max(s["end_time"] for s in shards)
    recent = [s for s in shards if s["end_time"] >= now - window_s]
    return {
        "shards": len(shards),
        "attempted": sum(s["count"] for s in shards),
        "successes": sum(s["successes"] for s in shards),
        "images_per_s_overall": sum(s["successes"] for s in shards) / max(end - start, 1e-9),
        "window_s": window_s,
        "images_per_s_window": sum(s["successes"] for s in recent) / window_s,
        "last_shard_end": end,
    }


def ledger_summary(run_dir: str | Path, top: int) -> list[dict[str, Any]]:
    """Per stage and source: rows in, kept, success rate and the most frequent drop reasons."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(Path(run_dir).glob("results/**/*.stats.json")):
        payload = _read_json(path)
        if payload is None:
            continue
        for entry in payload if isinstance(payload, list) else [payload]:
            row = totals.setdefault(
                (entry["stage"], entry["source"]),
                {"stage": entry["stage"], "source": entry["source"], "rows_in": 0, "kept": 0, "dropped": Counter()},
            )
            row["rows_in"] += entry["rows_in"]
            row["kept"] += entry["kept"]
            row["dropped"].update(entry["dropped"])
    rows = []
    for row in totals.values():
        row["success_rate"] = row["kept"] / row["rows_in"] if row["rows_in"] else None
        row["top_drops"] = row.pop("dropped").most_common(top)
        rows.append(row)
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r["stage"], len(order)), r["stage"], r["source"]))


def failing_hosts(run_dir: str | Path, top: int) -> list[dict[str, Any]]:
    """Hosts with the most failed fetches so far (img2dataset's per-shard status tables)."""
    import pyarrow.parquet as pq

    tried: Counter = Counter()
    failed: Counter = Counter()
    for path in Path(run_dir).glob("results/pub11/download/*/*.parquet"):
        try:
            table = pq.read_table(path, columns=["url", "status"])
        except (OSError, ValueError):
            continue  # being written right now
        for url, status in zip(table.column("url").to_pylist(), table.column("status").to_pylist()):
            host = url_host(url) if url else ""
            tried[host] += 1
            if status != "success":
                failed[host] += 1
    return [
        {"host": host, "failed": n, "tried": tried[host], "failure_rate": n / tried[host]}
        for host, n in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    ]


HOST_TIMING = "results/pub11/host_timing"


def host_timing(run_dir: str | Path) -> dict[str, list]:
    """{host: [requests, seconds, errors]} summed over every part's timing files.

    Each download process appends lines `host<TAB>count<TAB>seconds<TAB>errors` to a file of its own
    (rs5m.pub11.crawl_pacing.HostTimes); a last line without its newline is being written and skipped.
    """
    totals: dict[str, list] = {}
    for path in Path(run_dir).glob(f"{HOST_TIMING}/*/*.tsv"):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.split("\n")[:-1]:
            fields = line.split("\t")
            try:
                count, seconds, errors = int(fields[1]), float(fields[2]), int(fields[3])
            except (IndexError, ValueError):
                continue
            tally = totals.setdefault(fields[0], [0, 0.0, 0])
            tally[0] += count
            tally[1] += seconds
            tally[2] += errors
    return totals


def slowest_hosts(run_dir: str | Path, top: int) -> list[dict[str, Any]]:
    """Hosts with the longest mean fetch time so far (requests paced and sent, robots.txt included)."""
    rows = [
        {"host": host, "requests": n, "mean_fetch_s": seconds / n, "errors": errors}
        for host, (n, seconds, errors) in host_timing(run_dir).items()
        if n
    ]
    return sorted(rows, key=lambda r: (-r["mean_fetch_s"], r["host"]))[:top]


def measured_seconds(run_dir: str | Path) -> dict[str, float]:
    """Wall seconds of the finished jobs per rule, from their `benchmark:` files
    (`results/benchmarks/<rule>.tsv` or `results/benchmarks/<rule>/...tsv`)."""
    root = Path(run_dir) / "results" / "benchmarks"
    seconds: dict[str, float] = {}
    for path in root.glob("**/*.tsv"):
        try:
            header, first = path.read_text().splitlines()[:2]
            value = float(first.split("\t")[header.split("\t").index("s")])
        except (OSError, ValueError):
            continue  # being written right now
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        seconds[rule] = seconds.get(rule, 0.0) + value
    return seconds


def eta_hours(progress: Sequence[dict[str, Any]], stages: Sequence[dict[str, Any]]) -> float | None:
    """Job-hours left by the plan's per-rule hours (each rule's left share of its planned hours)."""
    hours = {s["rule"]: s.get("job_hours") for s in stages}
    known = [p for p in progress if hours.get(p["rule"])]
    if not known:
        return None
    return sum(hours[p["rule"]] * (p["total"] - p["done"]) / p["total"] for p in known)


def build_status(
    run_dir: str | Path, jobs: Sequence[PlannedJob], stages: Sequence[dict[str, Any]], window_s: float, top: int
) -> dict[str, Any]:
    now = time.time()
    progress = job_progress(run_dir, jobs)
    measured = measured_seconds(run_dir)
    planned = {s["rule"]: s.get("job_hours") for s in stages}
    for row in progress:
        row["measured_s"] = measured.get(row["rule"])
        row["planned_s"] = None if planned.get(row["rule"]) is None else planned[row["rule"]] * 3600
    return {
        "run_dir": str(run_dir),
        "time": now,
        "jobs": progress,
        "done": sum(p["done"] for p in progress),
        "total": sum(p["total"] for p in progress),
        "running": sum(p["running"] for p in progress),
        "download": download_rate(run_dir, window_s, now),
        "sources": ledger_summary(run_dir, top),
        "failing_hosts": failing_hosts(run_dir, top),
        "slowest_hosts": slowest_hosts(run_dir, top),
        "eta_job_hours": eta_hours(progress, stages),
    }


def status_text(status: dict[str, Any]) -> str:
    lines = [f"{status['run_dir']}: {status['done']} of {status['total']} jobs done, {status['running']} running"]
    lines += ["", f"{'rule':30} {'done':>6} {'total':>6} {'running':>8} {'job s':>9} {'planned s':>10}"]
    for p in status["jobs"]:
        measured = "-" if p["measured_s"] is None else f"{p['measured_s']:.1f}"
        planned = "-" if p["planned_s"] is None else f"{p['planned_s']:.1f}"
        lines.append(f"{p['rule']:30} {p['done']:>6} {p['total']:>6} {p['running']:>8} {measured:>9} {planned:>10}")
    d = status["download"]
    if d.get("shards"):
        lines += [
            "",
            f"download: {d['successes']:,} of {d['attempted']:,} fetched in {d['shards']} shards; "
            f"{d['images_per_s_window']:.1f} images/s over the last {d['window_s'] / 60:g} min, "
            f"{d['images_per_s_overall']:.1f} overall",
        ]
    if status["sources"]:
        lines += ["", f"{'stage':16} {'source':12} {'in':>9} {'kept':>9} {'rate':>6}  top drop reasons"]
        for s in status["sources"]:
            rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.0%}"
            drops = ", ".join(f"{reason} {n}" for reason, n in s["top_drops"])
            lines.append(f"{s['stage']:16} {s['source']:12} {s['rows_in']:>9,} {s['kept']:>9,} {rate:>6}  {drops}")
    if status["failing_hosts"]:
        lines += [
            "",
            "most-failing hosts: "
            + ", ".join(f"{h['host']} {h['failed']}/{h['tried']}" for h in status["failing_hosts"]),
        ]
    if status["slowest_hosts"]:
        lines += [
            "",
            "slowest hosts (mean fetch): "
            + ", ".join(
                f"{h['host']} {h['mean_fetch_s']:.2f} s x {h['requests']}"
                + (f" ({h['errors']} failed)" if h["errors"] else "")
                for h in status["slowest_hosts"]
            ),
        ]
    eta = status["eta_job_hours"]
    lines += [
        "",
        "ETA: " + ("unknown (no plan hours)" if eta is None else f"{eta:.2f} job-hours left by the plan's rates"),
    ]
    return "\n".join(lines) + "\n"
