"""Crash and resume: a SIGKILL in the middle of writing shards, then a rerun, gives the same bytes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from assembly_fakes import make_rs3
from conftest import REPO, snakemake

WRITE = """
import sys
from rs5m.assemble.settings import ShardSettings
from rs5m.assemble.shards import write_subset_shards
from rs5m.configured import config
run = sys.argv[1]
settings = ShardSettings.from_config(config({"split": {"val_fraction": 0.05}, "shards": {"target_bytes": 8000}}))
write_subset_shards("rs3", run + "/results/rs3/final.parquet", run + "/" + sys.argv[2],
                    run + "/" + sys.argv[2] + "/rs3.manifest.json", settings, base_dir=run)
"""


def _write_shards(run: Path, out: str, kill_when=None) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    process = subprocess.Popen([sys.executable, "-c", WRITE, str(run), out], env=env)
    if kill_when is not None:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if kill_when():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    return process.wait(timeout=120)


def _tars(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.tar*"))}


def test_shard_job_killed_mid_write_then_rerun_is_byte_identical(tmp_path):
    make_rs3(tmp_path, {"fmow": 300, "ben": 300, "millionaid": 300})
    assert _write_shards(tmp_path, "clean") == 0
    crashed = tmp_path / "crashed"
    # Kill once a few tars are complete and the next is half written.
    code = _write_shards(tmp_path, "crashed", kill_when=lambda: len(list(crashed.glob("train/*.tar"))) >= 3)
    assert code == -signal.SIGKILL
    assert not (crashed / "rs3.manifest.json").exists()  # the job's declared output: not done
    assert _write_shards(tmp_path, "crashed") == 0
    clean = _tars(tmp_path / "clean")
    assert len(clean) > 5 and _tars(crashed) == clean
    assert (crashed / "rs3.manifest.json").read_bytes() == (tmp_path / "clean/rs3.manifest.json").read_bytes()


@pytest.mark.workflow
def test_demo_killed_mid_stage_then_resumed_gives_identical_shards(tmp_path, demo_run):
    clean, crashed = demo_run, tmp_path / "crashed"
    crashed.mkdir()
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(crashed),
        "--cores",
        "2",
        "assemble",
    ]
    process = subprocess.Popen(
        command, cwd=crashed, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    # Mid-stage: the shard jobs have started writing tars but not finished their manifests.
    while process.poll() is None and time.monotonic() < deadline:
        if (
            list((crashed / "results/shards").glob("*/*.tar*"))
            and not (crashed / "results/shards/rs3.manifest.json").exists()
        ):
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    # The README's recovery: unlock, then rerun with --rerun-incomplete.
    snakemake(crashed, "--unlock")
    snakemake(crashed, "--cores", "2", "--rerun-incomplete", "assemble")
    assert _tars(crashed / "results/shards") == _tars(clean / "results/shards")
    audit = (crashed / "results/stats/audit.json").read_text()
    assert '"ok": true' in audit
