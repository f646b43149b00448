"""The workflow on a real SLURM cluster: the demo through `--profile config/profiles/slurm`.

tests/slurm/cluster.sh brings up a single-node cluster on localhost (partitions `cpu` and `gpu`,
two fake GPUs). One scenario runs the demo on it the way docs/slurm.md tells a user to, including
both recoveries: the head process is killed mid-run and the documented commands finish the run;
in that second run a running job is cancelled with `scancel` and the profile's `retries` resubmit
it. The tests then check the SLURM job records and compare the outputs with a local run of the
demo made before, in the same folder (some tables hold absolute paths).
Opt-in: it needs root (the daemons run as root; apt-get installs slurm-wlm and munge if missing),
so it runs only with RS5M_TEST_SLURM=1 (`.ci/run` sets it) and otherwise skips saying so. Once
opted in, if the cluster cannot come up, the tests fail with the daemon logs: they never skip.
Every process the scenario starts carries a marker in its environment (SLURM passes it on to the
jobs and their job steps); the teardown ends every marked process left, job steps included, and
fails if one survives.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = "config/profiles/slurm"
RUN_TIMEOUT = 900
# Outputs compared byte for byte with a local run: the assembly's shards and metafiles (once the
# demo writes them) and every table between stages. Ledger JSON and benchmark files are left out:
# they hold run times.
COMPARED_OUTPUTS = ["results/shards/**/*", "results/metafiles/**/*", "results/**/*.parquet"]
RECORD_FIELDS = ["JobID", "Name", "Partition", "State", "NumCPUs", "MinMemory", "tres-per-job", "Comment"]
OPT_IN = "RS5M_TEST_SLURM"
OPT_IN_MESSAGE = (
    f"the SLURM cluster test is opt-in: set {OPT_IN}=1 to run it (it installs slurm-wlm and munge "
    "with apt-get and starts daemons as root)"
)
# Set in the environment of every process the scenario starts; its value names the session.
MARK = "RS5M_SLURM_TEST_MARK"
SESSION_MARK = f"{os.getpid()}-{time.time_ns()}"


def opted_in() -> bool:
    return os.environ.get(OPT_IN) == "1"


def marked_pids(mark: str = SESSION_MARK) -> list[int]:
    """Processes whose environment carries this session's marker (heads, jobs, job steps)."""
    wanted = f"{MARK}={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has ended; only its parent can reap it
            continue
        if wanted in environ.split(b"\0"):
            pids.append(int(entry.name))
    return sorted(pids)


def end_marked_processes(mark: str = SESSION_MARK, grace: float = 10) -> list[int]:
    """TERM, then KILL after `grace` seconds, every process of this session still running (by PID,
    whatever its parent or process group); returns the PIDs found."""
    found = marked_pids(mark)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in marked_pids(mark):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while marked_pids(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not marked_pids(mark):
            break
    return found


# --------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="session")
def cluster():
    """A fresh SLURM cluster for the session; stopped (every daemon, by PID) at the end, and every
    process the scenario started (heads, jobs, job steps) ended: none may be left."""
    if not opted_in():
        pytest.skip(OPT_IN_MESSAGE)
    # Not under pytest's tmp folders: those are private to root and munged runs as user munge.
    state = Path(tempfile.mkdtemp(prefix="rs5m-slurm-"))
    state.chmod(0o755)
    env = {**os.environ, "RS5M_SLURM_STATE": str(state)}
    up = subprocess.run(["bash", str(CLUSTER), "up"], env=env, capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, timeout=120)
        pytest.fail(
            f"the SLURM test cluster did not come up (exit {up.returncode}):\n{up.stdout}\n{up.stderr}", pytrace=False
        )
    os.environ["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
    yield env
    os.environ.pop("SLURM_CONF", None)
    down = subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, text=True, timeout=120)
    # slurmstepd is gone now; a job step it ran (`python -m snakemake ... --executor slurm-jobstep`,
    # parent 1, a process group of its own) would run on: end it and whatever else the test started.
    leftover = end_marked_processes()
    assert down.returncode == 0, down.stderr
    status = subprocess.run(["bash", str(CLUSTER), "status"], env=env, capture_output=True, text=True, timeout=60)
    assert "running" not in status.stdout.replace("not running", ""), status.stdout
    assert not marked_pids(), f"processes of the test still running after teardown: {marked_pids()}"
    shutil.rmtree(state, ignore_errors=True)
    if leftover:
        print(f"teardown ended processes the test had started: {leftover}", file=sys.stderr)


def cluster_logs(env) -> str:
    logs = subprocess.run(["bash", str(CLUSTER), "logs"], env=env, capture_output=True, text=True, timeout=60)
    return logs.stderr[-20000:]


@dataclass
class JobRecord:
    jobid: int
    run: str
    partition: str
    state: str
    cpus: int
    mem_mb: int
    tres: str
    rule: str
    wildcards: str


def mem_mb(text: str) -> int:
    value, unit = re.fullmatch(r"(\d+)([KMGT]?)", text).groups()
    return int(value) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[unit]


def job_records() -> list[JobRecord]:
    """Every job slurmctld still knows (MinJobAge is an hour on the test cluster)."""
    fmt = ",".join(f"{field}:|" for field in RECORD_FIELDS)
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "-O", fmt], capture_output=True, text=True, check=True
    ).stdout
    records = []
    for line in out.splitlines():
        jobid, name, partition, state, cpus, memory, tres, comment = line.split("|")[:8]
        match = re.fullmatch(r"rule_(.+?)(?:_wildcards_(.*))?", comment)
        rule, wildcards = (match.group(1), match.group(2) or "") if match else (comment, "")
        records.append(JobRecord(int(jobid), name, partition, state, int(cpus), mem_mb(memory), tres, rule, wildcards))
    return records


# --------------------------------------------------------------------------- the repository copies


def copy_repo(dest: Path, repo: Path | None = None) -> Path:
    """The repository's files (tracked and untracked, not ignored) without its outputs, into the
    existing folder `dest`."""
    repo = repo or REPO
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        # Not a git checkout (a release tarball): everything but the outputs, into the existing folder.
        shutil.copytree(
            repo,
            dest,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".git", ".venv", "results", "logs", ".snakemake", "resources"),
        )
        return dest
    for name in filter(None, listed.stdout.split("\0")):
        source = repo / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def run_env(copy: Path) -> dict:
    """Jobs import the copy's library; SLURM passes this environment on to every job."""
    return {
        **os.environ,
        "PYTHONPATH": str(copy / "workflow"),
        "HF_HUB_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        MARK: SESSION_MARK,  # SLURM hands it on to every job and job step: the teardown finds them by it
    }


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def start(copy: Path, log: Path, *args: str) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(
            snakemake_command(*args),
            cwd=copy,
            env=run_env(copy),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, log: Path, env) -> int:
    try:
        return process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(
            f"snakemake did not finish in {RUN_TIMEOUT}s:\n{log.read_text()[-8000:]}\n{cluster_logs(env)}",
            pytrace=False,
        )


def run_id(log: Path, process: subprocess.Popen, timeout: float = 120) -> str:
    """The SLURM run ID the head prints first: the name of every job it submits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"SLURM run ID: (\S+)", log.read_text())
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no SLURM run ID in the head's output:\n{log.read_text()[-8000:]}")


def wait_for_running_job(run: str, process: subprocess.Popen, log: Path, rule: str | None = None) -> JobRecord:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for record in job_records():
            if record.run == run and record.state == "RUNNING" and rule in (None, record.rule):
                return record
        if process.poll() is not None:
            break
        time.sleep(0.25)
    raise AssertionError(f"no running job of {rule or 'any rule'} in run {run}:\n{log.read_text()[-8000:]}")


def executed_jobs(log_text: str) -> tuple[Counter, Counter]:
    """(rule, wildcards) of the jobs a head submitted and of those it ran itself (localrules).

    A head prints a job's `rule` block when it selects the job and a `Job N has been submitted with
    SLURM jobid` line once sbatch took it: a head killed in between selected the job but never
    submitted it (seen in CI: three RS3 readers printed, the head killed before their sbatch)."""
    sbatched = set(re.findall(r"^Job (\d+) has been submitted with SLURM jobid", log_text, flags=re.M))
    submitted, local = Counter(), Counter()
    for kind, rule, body in re.findall(r"^(localrule|rule) (\w+):\n((?:    .*\n)*)", log_text, flags=re.M):
        wildcards = re.search(r"^    wildcards: (.*)$", body, flags=re.M)
        values = "_".join(pair.split("=", 1)[1] for pair in wildcards.group(1).split(", ")) if wildcards else ""
        if kind == "localrule":
            local[(rule, values)] += 1
            continue
        jobid = re.search(r"^    jobid: (\d+)$", body, flags=re.M)
        if jobid is None or jobid.group(1) in sbatched:
            submitted[(rule, values)] += 1
    return submitted, local


@dataclass
class PlannedJob:
    rule: str
    wildcards: str
    threads: int
    resources: dict


def planned(dry_run_output: str) -> list[PlannedJob]:
    jobs = []
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)*)", dry_run_output, flags=re.M):
        wildcards = re.search(r"^    wildcards: (.*)$", body, flags=re.M)
        values = "_".join(pair.split("=", 1)[1] for pair in wildcards.group(1).split(", ")) if wildcards else ""
        threads = re.search(r"^    threads: (\d+)$", body, flags=re.M)
        resources = re.search(r"^    resources: (.*)$", body, flags=re.M)
        pairs = dict(pair.split("=", 1) for pair in resources.group(1).split(", ")) if resources else {}
        jobs.append(PlannedJob(rule, values, int(threads.group(1)) if threads else 1, pairs))
    return jobs


def comparable(path: Path) -> bytes:
    """Shards and metafiles byte for byte. Tables by content: img2dataset writes its status rows in
    the order downloads finish, and score tables carry their wall time in the file metadata."""
    if path.suffix != ".parquet" or "/shards/" in path.as_posix():
        return path.read_bytes()
    table = pq.read_table(path).replace_schema_metadata(None)
    key = next((c for c in ("key", "uid") if c in table.column_names), None)
    if key:
        table = table.sort_by(key)
    return repr(table.to_pylist()).encode()


def output_files(root: Path) -> dict[str, bytes]:
    paths = {p for pattern in COMPARED_OUTPUTS for p in root.glob(pattern) if p.is_file()}
    return {
        p.relative_to(root).as_posix(): comparable(p)
        for p in sorted(paths)
        if not p.relative_to(root).as_posix().startswith("results/benchmarks/")
    }


# --------------------------------------------------------------------------- the scenario


@dataclass
class Scenario:
    copy: Path
    plan: list[PlannedJob]
    runs: list[str]
    first_log: str
    second_log: str
    cancelled: JobRecord
    unlock_output: str


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """Where the SLURM run happens (a copy of the repository)."""
    return tmp_path_factory.mktemp("repo")


@pytest.fixture(scope="session")
def local_outputs(demo_run):
    """The outputs of the shared local demo run (tests/conftest.py), made in another folder."""
    return output_files(demo_run)


@pytest.fixture(scope="session")
def scenario(cluster, local_outputs, run_folder) -> Scenario:
    copy = copy_repo(run_folder)
    dry = subprocess.run(
        snakemake_command("-n", "--profile", PROFILE),
        cwd=copy,
        env=run_env(copy),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stdout[-4000:] + dry.stderr[-4000:]
    plan = planned(dry.stdout + dry.stderr)

    # Run 1: the head process dies (SIGKILL) while a keyword-filter job is running.
    first_log = copy / "head-1.log"
    head = start(copy, first_log, "--profile", PROFILE)
    first_run = run_id(first_log, head)
    wait_for_running_job(first_run, head, first_log, rule="keyword_filter")
    os.killpg(head.pid, signal.SIGKILL)
    head.wait(timeout=60)

    # The recovery docs/slurm.md gives: cancel the dead run's jobs by its run ID, unlock, rerun.
    subprocess.run(["scancel", f"--name={first_run}"], check=True)
    unlock = subprocess.run(
        snakemake_command("--profile", PROFILE, "--unlock"),
        cwd=copy,
        env=run_env(copy),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unlock.returncode == 0, unlock.stdout[-4000:] + unlock.stderr[-4000:]

    # Run 2 finishes the work; one of its jobs is cancelled while running and must be retried.
    second_log = copy / "head-2.log"
    head = start(copy, second_log, "--profile", PROFILE, "--rerun-incomplete")
    second_run = run_id(second_log, head)
    cancelled = wait_for_running_job(second_run, head, second_log)
    subprocess.run(["scancel", str(cancelled.jobid)], check=True)
    code = finish(head, second_log, cluster)
    assert code == 0, f"the recovery run failed:\n{second_log.read_text()[-8000:]}\n{cluster_logs(cluster)}"
    return Scenario(
        copy,
        plan,
        [first_run, second_run],
        first_log.read_text(),
        second_log.read_text(),
        cancelled,
        unlock.stdout + unlock.stderr,
    )


# --------------------------------------------------------------------------- the checks


def finished_before_its_cancel(copy: Path, record: JobRecord) -> bool:
    """Whether the Snakemake job step inside this SLURM job had finished its rule (outputs and
    metadata written) when the job was cancelled: its SLURM log (kept, as the head that would
    have deleted it was dead) ends the step with Snakemake's own summary line."""
    logs = list((copy / "logs" / "slurm" / f"rule_{record.rule}").rglob(f"{record.jobid}.log"))
    return len(logs) == 1 and "1 of 1 steps (100%) done" in logs[0].read_text()


def test_every_non_local_job_ran_as_a_slurm_job(scenario):
    records = [r for r in job_records() if r.run in scenario.runs]
    completed = {(r.rule, r.wildcards) for r in records if r.state == "COMPLETED"}
    first_submitted, first_local = executed_jobs(scenario.first_log)
    second_submitted, second_local = executed_jobs(scenario.second_log)
    local = set(first_local) | set(second_local)
    planned_jobs = Counter((job.rule, job.wildcards) for job in scenario.plan)
    assert max(planned_jobs.values()) == 1
    # The recovery's `scancel --name` can reach a job of the dead run while its batch script exits:
    # SLURM records it CANCELLED although its job step had finished the rule, and the rerun rightly
    # keeps those outputs. Such a job counts as done only on that evidence: cancelled in the first
    # run, not submitted again, and its SLURM log shows the step's completion.
    done_before_cancel = {
        (r.rule, r.wildcards)
        for r in records
        if r.run == scenario.runs[0]
        and r.state == "CANCELLED"
        and (r.rule, r.wildcards) not in completed
        and (r.rule, r.wildcards) not in second_submitted
        and finished_before_its_cancel(scenario.copy, r)
    }
    # Every planned job completed: as a SLURM job, or on the head for the localrules only.
    assert completed | done_before_cancel | local == set(planned_jobs)
    assert not (completed | done_before_cancel) & local
    assert completed, "no SLURM job completed"
    # Every job a head submitted has a SLURM record under that head's run ID.
    for run, submitted in zip(scenario.runs, (first_submitted, second_submitted)):
        assert set(submitted) <= {(r.rule, r.wildcards) for r in records if r.run == run}
    # The second run completed each of its jobs once (the cancelled one after its retry).
    second = Counter((r.rule, r.wildcards) for r in records if r.run == scenario.runs[1] and r.state == "COMPLETED")
    assert set(second) == set(second_submitted) and max(second.values()) == 1


def test_jobs_got_the_partition_threads_memory_and_gpus_of_the_profile(scenario):
    profile = yaml.safe_load((REPO / PROFILE / "config.yaml").read_text())
    defaults, per_rule = profile["default-resources"], profile.get("set-resources", {})
    by_job = {(job.rule, job.wildcards): job for job in scenario.plan}
    records = [r for r in job_records() if r.run in scenario.runs and r.state == "COMPLETED"]
    assert records
    for record in records:
        job = by_job[(record.rule, record.wildcards)]
        wants_gpu = int(job.resources.get("gpu", 0)) > 0
        expected_partition = per_rule.get(record.rule, {}).get("slurm_partition", defaults["slurm_partition"])
        assert record.partition == expected_partition, record
        assert record.partition == ("gpu" if wants_gpu else "cpu"), (
            f"GPU rule {record.rule} missing from the profile's set-resources"
        )
        assert ("gres:gpu:" in record.tres) == wants_gpu, record
        assert record.cpus == job.threads, record
        assert record.mem_mb == int(job.resources["mem_mb"]), record
        if "mem_mb" in per_rule.get(record.rule, {}):
            assert record.mem_mb == per_rule[record.rule]["mem_mb"], record


def test_a_cancelled_job_is_retried_and_the_run_completes(scenario):
    cancelled = scenario.cancelled
    attempts = [
        r
        for r in job_records()
        if r.run == scenario.runs[1] and (r.rule, r.wildcards) == (cancelled.rule, cancelled.wildcards)
    ]
    states = [r.state for r in sorted(attempts, key=lambda r: r.jobid)]
    assert states[0] == "CANCELLED" and states[-1] == "COMPLETED", states


def test_head_killed_then_unlock_and_rerun_finish_the_run(scenario):
    # The first run died before it finished: its log has no summary line.
    assert "steps (100%) done" not in scenario.first_log
    assert "Unlocked working directory" in scenario.unlock_output
    assert "steps (100%) done" in scenario.second_log
    # The first run finished the demo inputs and was killed with keyword-filter jobs running.
    first_records = [r for r in job_records() if r.run == scenario.runs[0]]
    assert ("demo_metadata", "COMPLETED") in {(r.rule, r.state) for r in first_records}
    assert ("keyword_filter", "CANCELLED") in {(r.rule, r.state) for r in first_records}
    # The rerun kept that finished work and redid what the dead run had left.
    second_submitted, _ = executed_jobs(scenario.second_log)
    assert "demo_metadata" not in {rule for rule, _ in second_submitted}
    assert "keyword_filter" in {rule for rule, _ in second_submitted}


def test_outputs_are_byte_identical_to_a_local_run(scenario, local_outputs):
    assert local_outputs, "the local run wrote none of the compared outputs"
    slurm_outputs = output_files(scenario.copy)
    assert sorted(slurm_outputs) == sorted(local_outputs)
    # The last stage the demo has must be among them: keyword tables now, shards once assembled.
    assert any(name.startswith("results/pub11/metadata/") for name in local_outputs)
    different = [name for name in local_outputs if slurm_outputs[name] != local_outputs[name]]
    assert not different
