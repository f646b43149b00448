"""Shared test helpers: the repository, the optional shared fixtures, and Snakemake runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"

os.environ.setdefault("RS5M_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The embedded default, run once for real in a fresh folder and shared by the tests that
    need a finished demo (they read it and dry-run in it; none of them changes its outputs)."""
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(workdir, "--cores", "2")
    return workdir


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` (its outputs land there, not in the repo)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from the table a dry run prints (`job  count` ... `total`)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        fields = line.split()
        if fields[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(fields) == 2 and fields[1].isdigit():
            if fields[0] == "total":
                break
            counts[fields[0]] = int(fields[1])
    return counts
