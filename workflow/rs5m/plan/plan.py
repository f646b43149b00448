"""Build plan (rule `plan`, command `rs5m plan`): per rule the jobs, items, bytes, CPU- and GPU-hours,
and the crawl's makespan bound by host, before the first request is sent.

Jobs come from Snakemake's dry run of the config (rs5m.plan.dag); item counts (the volumes) from
the run folder's ledgers where they exist, else from the URL filter's output, else from the
published counts (rs5m/data/published_counts.yaml) or the SPEC 2.2 funnel's ratios; hours from the
rates table (rs5m/data/rates.yaml), each rate with the machine it was measured on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq
import yaml

from rs5m.hosts import url_host
from rs5m.ledger import read_stats
from rs5m.plan import crawl
from rs5m.plan.dag import PlannedJob, job_counts, planned_jobs
from rs5m.plan.render import plan_markdown, plot_hosts
from rs5m.plan.settings import PlanSettings

log = logging.getLogger(__name__)

# Volumes in DAG order: (name, ledger stage whose `kept` it is, the volume it follows in SPEC 2.2).
VOLUMES = [
    ("metadata_rows", None, None),
    ("keyword_kept", "keyword_filter", None),
    ("urls", "url_filter", "keyword_kept"),
    ("downloaded", "download", "urls"),
    ("valid_images", "invalid", "downloaded"),
    ("dedup_kept", "image_dedup", "valid_images"),
    ("outlier_kept", "outliers", "dedup_kept"),
]
RS3_VOLUMES = {"fmow": "rs3_fmow", "bigearthnet": "rs3_bigearthnet", "millionaid": "rs3_millionaid"}
VOLUME_ORDER = [v[0] for v in VOLUMES] + list(RS3_VOLUMES.values()) + ["rs3_images", "final_images"]
# (input item kind, output item kind, volume of the outputs) per rule, for the bytes columns.
RULE_BYTES = {
    "keyword_filter": ("metadata_row", "metadata_row", "keyword_kept"),
    "url_filter": ("metadata_row", "metadata_row", "urls"),
    "download_part": ("metadata_row", "image", "downloaded"),
    "images_part": ("image", None, None),
    "score_part": ("image", "embedding", "dedup_kept"),
    "rs3_caption": ("image", None, None),
    "decontamination_rs3_features": ("image", "embedding", "rs3_images"),
    "shards": ("image", "image", "final_images"),
}


def load_yaml_data(name: str) -> dict:
    return yaml.safe_load(resources.files("rs5m").joinpath("data", name).read_text())


def ledger_volumes(run_dir: str | Path) -> dict[str, int]:
    """Volumes measured by a run's ledgers (only the stages whose every job has written one are complete)."""
    files = sorted(Path(run_dir).glob("results/**/*.stats.json"))
    kept: Counter = Counter()
    rows_in: Counter = Counter()
    rs3: Counter = Counter()
    for entry in read_stats(files):
        kept[entry.stage] += entry.kept
        rows_in[entry.stage] += entry.rows_in
        if entry.stage == "rs3_read":
            rs3[entry.source] += entry.kept
    volumes: dict[str, int] = {}
    if "keyword_filter" in rows_in:
        volumes["metadata_rows"] = rows_in["keyword_filter"]
    for name, stage, _ in VOLUMES:
        if stage is not None and stage in kept:
            volumes[name] = kept[stage]
    for dataset, name in RS3_VOLUMES.items():
        if dataset in rs3:
            volumes[name] = rs3[dataset]
    if "decontamination" in kept:
        volumes["final_images"] = kept["decontamination"]
    return volumes


def complete_volumes(known: dict[str, int], published: dict[str, int]) -> tuple[dict[str, float], dict[str, str]]:
    """Fill the PUB11 volumes after the last one known with the published funnel's ratios.

    RS3 volumes are not estimated: a run's come from its readers' ledgers (`--published` gives the
    SPEC 3 counts); until then the RS3 rules' hours are left blank.
    """
    volumes: dict[str, float] = dict(known)
    origin = {name: "run" for name in known}
    for name, _stage, follows in VOLUMES:
        if name in volumes:
            continue
        if follows is not None and follows in volumes:
            volumes[name] = volumes[follows] * published[name] / published[follows]
            origin[name] = f"estimated: {follows} x SPEC 2.2 ratio"
    rs3_names = list(RS3_VOLUMES.values())
    if any(n in volumes for n in rs3_names):
        volumes["rs3_images"] = sum(volumes.get(n, 0) for n in rs3_names)
        origin["rs3_images"] = "sum of the RS3 datasets"
    if "final_images" not in volumes and "outlier_kept" in volumes:
        volumes["final_images"] = volumes["outlier_kept"] + volumes.get("rs3_images", 0)
        counted = "outlier_kept + rs3_images" if "rs3_images" in volumes else "outlier_kept (RS3 not counted yet)"
        origin["final_images"] = f"{counted}, before decontamination"
    return volumes, origin


def url_table(parts: Sequence[str | Path]) -> tuple[list[str], list[str], list[int]]:
    """(hosts, uids, part index) of every row of the URL filter's parts, in part order."""
    hosts, uids, part_of = [], [], []
    for index, path in enumerate(parts):
        table = pq.read_table(path, columns=["uid", "url"])
        hosts += [url_host(u) if u else "" for u in table.column("url").to_pylist()]
        uids += table.column("uid").to_pylist()
        part_of += [index] * table.num_rows
    return hosts, uids, part_of


def sample_hosts(sample: str | Path) -> Counter:
    """URLs per host in a sample of real URLs (parquet or csv with a `url` column, any case)."""
    path = Path(sample)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
    column = next(n for n in table.column_names if n.lower() == "url")
    return Counter(url_host(u) for u in table.column(column).to_pylist() if u)


def scaled_hosts(shares: Counter, urls: float) -> dict[str, int]:
    """A host histogram for `urls` URLs with the sample's host shares (every sampled host keeps >= 1)."""
    total = sum(shares.values())
    return {host: max(1, round(n * urls / total)) for host, n in shares.items()}


def crawl_plan(
    host_urls: dict[str, int],
    counts: Counter,
    hosts: Sequence[str] | None,
    uids: Sequence[str] | None,
    settings: PlanSettings,
    exact: bool,
) -> dict[str, Any]:
    """The crawl's makespan bound by host. Under `politeness: adaptive` the bound is the best case
    (every host paced at per_host_rate_max), and `adaptive` adds the worst case (every host slowed to
    min_rate, no bursts) with the hosts that set each."""
    adaptive = settings.politeness == "adaptive"
    rate_key = "per_host_rate_max" if adaptive else "per_host_rate"  # the stage-wide ceiling of a host
    rate = getattr(settings, rate_key)
    parts, parts_per_host, burst = settings.parts, settings.parts_per_host, settings.per_host_burst
    bounds = crawl.host_bounds(counts, rate, burst, parts, parts_per_host)
    bound = _bound(bounds)
    plan = {
        "urls": sum(host_urls.values()),
        "hosts": len(host_urls),
        "parts": parts,
        "parts_per_host": parts_per_host,
        "per_host_rate": settings.per_host_rate,
        "per_host_burst": burst,
        "split": "exact (the URL filter's host_part)" if exact else "even split over parts_per_host parts",
        "makespan_bound_s": bound,
        "setting_hosts": _setting_hosts(bounds),
        "top_hosts": [vars(b) for b in bounds[:10]],
        "histogram": crawl.histogram(host_urls.values()),
        "settings": crawl.settings_effect(hosts, uids, host_urls, rate, burst, parts, parts_per_host, rate_key),
    }
    if adaptive:
        worst = crawl.host_bounds(counts, settings.min_rate, 1.0, parts, parts_per_host)
        plan["adaptive"] = {
            "min_rate": settings.min_rate,
            "per_host_rate_max": settings.per_host_rate_max,
            "best_case": {"makespan_bound_s": bound, "setting_hosts": _setting_hosts(bounds)},
            "worst_case": {"makespan_bound_s": _bound(worst), "setting_hosts": _setting_hosts(worst)},
        }
    return plan


def _bound(bounds: Sequence[crawl.HostBound]) -> float:
    return bounds[0].seconds if bounds else 0.0


def _setting_hosts(bounds: Sequence[crawl.HostBound]) -> list[dict[str, Any]]:
    """The hosts whose bound is the stage's (at most 10)."""
    bound = _bound(bounds)
    return [vars(b) for b in bounds if b.seconds >= bound and bound > 0][:10]


def stage_rows(
    counts: dict[str, int], volumes: dict[str, float], origin: dict[str, str], rates: dict, threads: dict[str, int]
) -> list[dict[str, Any]]:
    """One row per rule: jobs, items, bytes in and out, CPU-hours, GPU-hours, and the rate's provenance."""
    item_bytes = {kind: spec["bytes"] for kind, spec in rates["bytes_per_item"].items()}
    rows = []
    for rule, jobs in counts.items():
        rate = rates["rules"].get(rule)
        row: dict[str, Any] = {"rule": rule, "jobs": jobs, "items": None, "item": None, "origin": None}
        row.update(bytes_in=None, bytes_out=None, cpu_hours=None, gpu_hours=None, job_hours=None)
        row.update(rate=None, machine=None, measured=None)
        if rate is not None:
            items = volumes.get(rate["items"])
            row.update(item=rate["items"], origin=origin.get(rate["items"]), rate=rate["source"])
            row.update(machine=rate["machine"], measured=rate["measured"])
            if items is not None:
                row["items"] = round(items)
                fixed = jobs * rate["job_s"]
                row["cpu_hours"] = (fixed + items / rate["cpu_per_s"]) / 3600
                if rate.get("gpu_per_s"):
                    row["gpu_hours"] = (fixed + items / rate["gpu_per_s"]) / 3600
                # the jobs' wall time added up: the GPU's when there is one, else CPU time over the job's threads
                if row["gpu_hours"]:
                    row["job_hours"] = row["gpu_hours"]
                else:
                    row["job_hours"] = row["cpu_hours"] / max(1, threads.get(rule, 1))
                kinds = RULE_BYTES.get(rule)
                if kinds:
                    in_kind, out_kind, out_volume = kinds
                    row["bytes_in"] = round(items * item_bytes[in_kind])
                    if out_kind is not None and volumes.get(out_volume) is not None:
                        row["bytes_out"] = round(volumes[out_volume] * item_bytes[out_kind])
        rows.append(row)
    return rows


def build_plan(
    run_dir: str | Path,
    jobs: Sequence[PlannedJob],
    settings: PlanSettings,
    configfiles: Sequence[str],
    published: bool,
    url_sample: str | None,
) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see plan_markdown for its reading)."""
    run_dir = Path(run_dir)
    rates = load_yaml_data("rates.yaml")
    counts_published = load_yaml_data("published_counts.yaml")
    known = {} if published else ledger_volumes(run_dir)
    url_parts = sorted((run_dir / "results" / "pub11" / "urldedup").glob("*.parquet"))
    hosts = uids = None
    if not published and len(url_parts) == settings.parts:
        hosts, uids, part_of = url_table(url_parts)
        counts = Counter(zip(hosts, part_of))
        host_urls = dict(Counter(hosts))
        known.setdefault("urls", len(hosts))
        exact = True
    if published:
        known = {k: v for k, v in counts_published.items() if k in {v[0] for v in VOLUMES} or k in RS3_VOLUMES.values()}
    volumes, origin = complete_volumes(known, counts_published)
    if published:
        origin.update({name: "published (rs5m/data/published_counts.yaml)" for name in known})
    if hosts is None:
        if url_sample is None:
            raise ValueError("no URL filter output in the run folder: give a sample of URLs (--url-sample)")
        shares = sample_hosts(url_sample)
        if "urls" not in volumes:  # nothing counted yet: the sample's own URLs, the volumes after them by ratio
            known["urls"] = sum(shares.values())
            volumes, origin = complete_volumes(known, counts_published)
            origin["urls"] = "the URL sample"
        host_urls = scaled_hosts(shares, volumes["urls"])
        counts = crawl.even_part_counts(host_urls, settings.parts, settings.parts_per_host)
        exact = False
    rows = stage_rows(job_counts(jobs), volumes, origin, rates, settings.threads)
    return {
        "run_dir": str(run_dir),
        "configfiles": [str(c) for c in configfiles],
        "volumes_from": "published counts (SPEC 2.2, SPEC 3)"
        if published
        else "the run folder's ledgers and URL filter output, the rest estimated",
        "volumes": {k: round(volumes[k]) for k in VOLUME_ORDER if k in volumes},
        "volume_origin": origin,
        "stages": rows,
        "totals": {
            "jobs": sum(r["jobs"] for r in rows),
            "cpu_hours": sum(r["cpu_hours"] or 0 for r in rows),
            "gpu_hours": sum(r["gpu_hours"] or 0 for r in rows),
        },
        "crawl": crawl_plan(host_urls, counts, hosts, uids, settings, exact),
        "jobs": [{"rule": j.rule, "outputs": list(j.outputs)} for j in jobs],
        "rates": rates,
    }


def write_plan(
    run_dir: str | Path,
    snakefile: str | Path,
    configfiles: Sequence[str],
    out_md: str | Path,
    out_json: str | Path,
    out_png: str | Path,
    settings: PlanSettings,
    published: bool,
    url_sample: str | None,
) -> dict[str, Any]:
    """Plan the build of `run_dir` and write `plan.md`, `plan.json` and the host histogram plot."""
    jobs = planned_jobs(run_dir, snakefile, configfiles)
    plan = build_plan(run_dir, jobs, settings, configfiles, published, url_sample)
    for path in (out_md, out_json, out_png):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(plan_markdown(plan))
    Path(out_json).write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")
    plot_hosts(plan["crawl"]["histogram"], out_png)
    log.info(
        "plan: %d jobs, crawl bound %.1f s; written to %s",
        plan["totals"]["jobs"],
        plan["crawl"]["makespan_bound_s"],
        out_md,
    )
    return plan


def load_config(configfiles: Sequence[str], snakefile: str | Path) -> dict[str, Any]:
    """The validated config as the workflow sees it: the configfiles merged in order (none: the
    embedded demo, config/config.yaml), every default filled in from config/schema.yaml."""
    from snakemake.utils import update_config, validate

    repo = Path(snakefile).resolve().parent
    config: dict[str, Any] = {}
    for path in configfiles or [repo / "config" / "config.yaml"]:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, str(repo / "config" / "schema.yaml"))
    return config
