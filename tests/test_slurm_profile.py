"""The SLURM profile without a cluster: what a dry run through it plans.

`snakemake -n --profile config/profiles/slurm` shows each job's threads and resources as they
would be submitted; tests/test_slurm_cluster.py checks the submissions on a real cluster.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "profiles" / "slurm" / "config.yaml"

pytestmark = pytest.mark.workflow


def dry_run(workdir: Path, *args: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--profile",
            str(PROFILE.parent),
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def planned(output: str) -> list[tuple[str, int, dict]]:
    """(rule, threads, resources) of every job of a dry run."""
    jobs = []
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)*)", output, flags=re.M):
        threads = re.search(r"^    threads: (\d+)$", body, flags=re.M)
        resources = re.search(r"^    resources: (.*)$", body, flags=re.M)
        pairs = dict(pair.split("=", 1) for pair in resources.group(1).split(", ")) if resources else {}
        jobs.append((rule, int(threads.group(1)) if threads else 1, pairs))
    return jobs


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_profile_is_loaded_and_threads_are_not_clamped_to_the_login_node(tmp_path):
    # 8 threads on a machine with fewer cores: the profile's `cores:` keeps them for the cluster.
    (tmp_path / "threads.yaml").write_text("metadata:\n  threads: 8\n")
    output = dry_run(tmp_path, "--configfile", str(REPO / "config" / "config.yaml"), str(tmp_path / "threads.yaml"))
    assert f"Using profile {PROFILE.parent}" in output
    threads = {threads for rule, threads, _ in planned(output) if rule == "keyword_filter"}
    assert threads == {8}


def test_every_job_gets_partition_memory_and_runtime(tmp_path, profile):
    jobs = planned(dry_run(tmp_path))
    assert jobs
    gpu_rules = {
        rule for rule, settings in profile["set-resources"].items() if settings.get("slurm_partition") == "gpu"
    }
    for rule, _, resources in jobs:
        assert int(resources["runtime"]) > 0 and int(resources["mem_mb"]) > 0, rule
        wants_gpu = int(resources.get("gpu", 0)) > 0
        # A rule that asks for a GPU must be routed to the GPU partition by the profile.
        assert wants_gpu == (rule in gpu_rules), f"{rule}: gpu={wants_gpu}, missing from or stale in set-resources"
        assert resources["slurm_partition"] == ("gpu" if wants_gpu else "cpu"), rule


def test_profile_avoids_the_status_check_trap(profile):
    # Without slurmdbd, `sacct` exists but fails and the plugin's default would wait forever.
    assert profile["slurm-status-command"] == "squeue"
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert profile["cores"] >= 256


def test_train_clip_asks_for_its_configured_gpus_on_one_node(tmp_path):
    # evaluation.train.gpus > 1: torchrun on one node, so the job gets every GPU there.
    (tmp_path / "gpus.yaml").write_text("evaluation:\n  train:\n    gpus: 4\n")
    output = dry_run(
        tmp_path, "evaluation", "--configfile", str(REPO / "config" / "config.yaml"), str(tmp_path / "gpus.yaml")
    )
    [(_, _, resources)] = [job for job in planned(output) if job[0] == "train_clip"]
    assert (resources["gpu"], resources["nodes"], resources["slurm_partition"]) == ("4", "1", "gpu")
