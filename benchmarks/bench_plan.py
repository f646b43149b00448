"""Benchmark: how long Snakemake takes to plan the full rebuild, and how many jobs it plans.

Usage: PYTHONPATH=workflow python benchmarks/bench_plan.py [--parts 1024 4096] [--small]
Builds a synthetic input tree with the file counts of the real sources (tiny valid files copied
from the demo's generators), points a copy of config/rs5m.yaml at it and times
`snakemake -n --profile config/profiles/slurm` once per `parts` value. Target: the plan is built
in 30 s or less. Prints the job count per rule and flags rules whose job count is high for a
SLURM scheduler. --small: a tenth of every file count and parts 128 (a smoke run).

The whole DAG is planned: keyword jobs, global URL dedup, then download, image checks, scores
and RS3 captions one job per part, global image dedup, outliers and assembly. The RS3 roots and
the detector's training folders are created empty (a dry run does not read them).

File counts of the public releases (metadata files, one keyword-filter input each unless the
source sets `files_per_job`):
  laion2b    128  laion/relaion2B-en: part-00000 .. part-00127 parquet
  coyo700m   128  kakaobrain/coyo-700m: data/part-00000-of-00128 .. 00127 parquet
  laioncoco  128  laion/laion-coco: 128 parquet parts (estimate; same export tooling as LAION-2B)
  laion400m   32  laion400m-meta: part-00000 .. part-00031 parquet
  wit         10  wit_v1.train.all-0000{0..9}-of-00010.tsv.gz
  redcaps   1000  annotations/<subreddit>_<year>.json: 350 subreddits x their active years
                  2008-2020 (estimate: about 1,000)
  yfcc15m, cc12m, cc3m, sbu, vg: one file each
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rs5m.demo.demo_metadata import DEMO_FILES, write_demo_inputs

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "profiles" / "slurm"
TARGET_SECONDS = 30
FILE_COUNTS = {
    "laion2b": 128,
    "coyo700m": 128,
    "laioncoco": 128,
    "laion400m": 32,
    "wit": 10,
    "yfcc15m": 1,
    "cc12m": 1,
    "redcaps": 1000,
    "cc3m": 1,
    "sbu": 1,
    "vg": 1,
}
# A SLURM job should carry minutes of work; above this many jobs a rule is worth a second look.
MANY_JOBS = 2000


def file_name(source: str, index: int) -> str:
    """What replaces the `*` of a source's glob for its index-th file."""
    if source == "redcaps":
        return f"subreddit{index // 13:03d}_{2008 + index % 13}"
    return f"part-{index:05d}"


def build_tree(root: Path, config: dict, scale: float) -> dict[str, int]:
    """Tiny valid files under `root` at the paths config/rs5m.yaml globs for; counts per source."""
    templates = root / "templates"
    write_demo_inputs(templates, seed=0, rows_per_source=5)
    written = {}
    for source, settings in config["sources"].items():
        pattern = settings["paths"][0]
        count = max(1, round(FILE_COUNTS[source] * scale)) if "*" in pattern else 1
        template = templates / DEMO_FILES[source][0]
        for index in range(count):
            target = root / pattern.replace("*", file_name(source, index), 1) if "*" in pattern else root / pattern
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, target)
        written[source] = count
    shutil.rmtree(templates)
    # Folders the full config names that a dry run only needs to exist.
    rs3 = config.get("rs3", {})
    folders = [rs3.get(d, {}).get("root") for d in ("fmow", "millionaid")] + rs3.get("bigearthnet", {}).get("roots", [])
    detector = config.get("outliers", {}).get("detector", {})
    folders += detector.get("positive_dirs", []) + detector.get("negative_dirs", [])
    for folder in filter(None, folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return written


def job_counts(output: str) -> dict[str, int]:
    counts, in_table = {}, False
    for line in output.splitlines():
        fields = line.split()
        if fields[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(fields) == 2 and fields[1].isdigit():
            if fields[0] == "total":
                break
            counts[fields[0]] = int(fields[1])
    return counts


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan(root: Path, configfile: Path, snakefile: Path = REPO / "Snakefile") -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of `snakemake -n` through the SLURM profile, and its job counts."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--profile",
        str(PROFILE),
        "-s",
        str(snakefile),
        "--directory",
        str(root),
        "--configfile",
        str(configfile),
    ]
    start, cpu = time.perf_counter(), child_cpu_seconds()
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, child_cpu_seconds() - cpu
    if result.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, cpu, job_counts(result.stdout)


def verdict(wall: float, cpu: float) -> str:
    # On a shared machine wall time counts other users' load; single-threaded CPU time does not.
    if wall <= TARGET_SECONDS:
        return "within the 30 s target"
    if cpu <= TARGET_SECONDS:
        return "within the 30 s target in CPU time; wall time includes this machine's load"
    return f"OVER the {TARGET_SECONDS} s target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--parts", type=int, nargs="+", help="download parts to plan (default: config/rs5m.yaml's, and 4096)"
    )
    parser.add_argument("--small", action="store_true", help="a tenth of the file counts, parts 128")
    args = parser.parse_args()

    base = yaml.safe_load((REPO / "config" / "rs5m.yaml").read_text())
    scale = 0.1 if args.small else 1.0
    parts_values = args.parts or ([128] if args.small else [base["parts"], 4096])

    with tempfile.TemporaryDirectory(prefix="rs5m-bench-plan-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        written = build_tree(root, base, scale)
        print(
            f"input tree: {sum(written.values())} files in {time.perf_counter() - start:.1f} s  "
            + ", ".join(f"{s} {n}" for s, n in written.items())
        )
        for parts in parts_values:
            config = dict(base, parts=parts)
            configfile = root / f"rs5m-{parts}.yaml"
            configfile.write_text(yaml.safe_dump(config, sort_keys=False))
            seconds, cpu, counts = plan(root, configfile)
            total = sum(counts.values())
            print(
                f"\nparts={parts}: plan {seconds:.1f} s wall, {cpu:.1f} s CPU ({verdict(seconds, cpu)}), "
                f"{total} jobs, {1000 * cpu / max(total, 1):.1f} ms CPU a job"
            )
            for rule, count in sorted(counts.items(), key=lambda item: -item[1]):
                note = ""
                if count > MANY_JOBS:
                    note = (
                        "  <- many jobs: group them (Snakemake `group:` + --group-components) or raise the work per job"
                    )
                print(f"  {rule:24s} {count:7d}{note}")
            keyword = counts.get("keyword_filter", 0)
            if keyword:
                files = sum(written.values())
                print(
                    f"  keyword_filter reads {files / keyword:.1f} files a job on average "
                    f"(sources: files_per_job groups small files)"
                )


if __name__ == "__main__":
    main()
