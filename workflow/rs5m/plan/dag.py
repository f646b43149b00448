"""The jobs Snakemake plans for a config: one dry run (`-n --forceall --nolock`), parsed.

Job counts come from Snakemake's own DAG rather than a second copy of the rules' fan-out logic, so
they cannot drift from what `snakemake -n` prints. The dry run takes no lock and changes no output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import rs5m


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    outputs: tuple[str, ...]


def default_snakefile() -> Path:
    """The Snakefile of the checkout this package is imported from (workflow/rs5m -> repository)."""
    return Path(rs5m.__file__).resolve().parents[2] / "Snakefile"


def parse_dry_run(text: str) -> list[PlannedJob]:
    """Jobs from a dry run's printout: each `rule NAME:` / `localrule NAME:` block and its `output:`."""
    jobs: list[PlannedJob] = []
    rule = None
    outputs: tuple[str, ...] = ()

    def close() -> None:
        if rule is not None:
            jobs.append(PlannedJob(rule, outputs))

    for line in text.splitlines():
        stripped = line.strip()
        head = stripped.split(" ", 1)
        if not line.startswith(" ") and len(head) == 2 and head[0] in ("rule", "localrule") and stripped.endswith(":"):
            close()
            rule, outputs = head[1][:-1], ()
        elif rule is not None and line.startswith("    output: "):
            outputs = tuple(p for p in stripped[len("output: ") :].split(", ") if p)
        elif rule is not None and stripped.startswith("Job stats:"):
            close()
            rule = None
    close()
    return jobs


def planned_jobs(run_dir: str | Path, snakefile: str | Path, configfiles: Sequence[str]) -> list[PlannedJob]:
    """Every job of a full build of `run_dir` with `configfiles` (none: the Snakefile's default)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(run_dir)]
    command += ["--dry-run", "--forceall", "--nolock", "--ignore-incomplete", "--cores", "1"]
    if configfiles:
        command += ["--configfile", *[str(Path(c).resolve()) for c in configfiles]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=run_dir, env=os.environ.copy())
    if result.returncode != 0:
        raise RuntimeError(f"snakemake dry run failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return parse_dry_run(result.stdout + "\n" + result.stderr)


def job_counts(jobs: Sequence[PlannedJob]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.rule] = counts.get(job.rule, 0) + 1
    return counts
