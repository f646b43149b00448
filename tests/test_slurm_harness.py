"""The SLURM cluster test's harness, without a cluster (issue 14, items 12-14): it is opt-in, it
copies a checkout that is not a git repository, and its teardown ends every process it started."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import test_slurm_cluster as harness

REPO = Path(__file__).resolve().parents[1]


def test_cluster_test_skips_without_the_opt_in_and_names_the_switch(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != harness.OPT_IN}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests/test_slurm_cluster.py"),
            "-k",
            "test_every_non_local_job_ran_as_a_slurm_job",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 skipped" in result.stdout and "RS5M_TEST_SLURM=1" in result.stdout, result.stdout[-3000:]


def test_ci_opts_in():
    assert "RS5M_TEST_SLURM=1" in (REPO / ".ci/run").read_text()


def test_copy_repo_of_a_checkout_that_is_not_a_git_repository(tmp_path, monkeypatch):
    tarball = tmp_path / "rs5m-0.1.0"  # what a release tarball unpacks to: no .git
    for rel in (
        "Snakefile",
        "rules/common.smk",
        "workflow/rs5m/__init__.py",
        "results/old.parquet",
        ".venv/bin/python",
        "logs/x.log",
    ):
        (tarball / rel).parent.mkdir(parents=True, exist_ok=True)
        (tarball / rel).write_text(rel)
    dest = tmp_path / "copy"
    dest.mkdir()  # the test's run folder exists already (tmp_path_factory.mktemp)
    monkeypatch.setattr(harness, "REPO", tarball)
    harness.copy_repo(dest)
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["Snakefile", "rules/common.smk", "workflow/rs5m/__init__.py"]


def test_teardown_ends_a_detached_grandchild_like_a_job_step(tmp_path, monkeypatch):
    """A process of the run that has left its parent (parent 1, a session of its own), as the job
    step `python -m snakemake ... --executor slurm-jobstep` does once slurmstepd is killed."""
    mark = f"selftest-{os.getpid()}-{time.time_ns()}"
    pidfile = tmp_path / "grandchild.pid"
    launcher = textwrap.dedent(f"""
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        open({str(pidfile)!r}, "w").write(str(child.pid))
    """)
    env = {**os.environ, harness.MARK: mark}
    subprocess.run([sys.executable, "-c", launcher], env=env, check=True, timeout=60)
    grandchild = int(pidfile.read_text())
    try:
        assert harness.marked_pids(mark) == [grandchild]
        assert os.getpgid(grandchild) == grandchild  # its own process group: killpg of the head misses it
        assert harness.end_marked_processes(mark, grace=5) == [grandchild]
        assert harness.marked_pids(mark) == []
    finally:
        try:
            os.kill(grandchild, 9)
        except ProcessLookupError:
            pass
