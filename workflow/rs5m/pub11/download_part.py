"""Download stage: one img2dataset run per part, and a retry of only the URLs that failed.

Reads `results/pub11/urldedup/{part}.parquet`; writes `results/pub11/download/{part}/` (WebDataset shards + status parquet, `uid` carried)
and the part's fetch times per host in `results/pub11/host_timing/{part}/`.

Every connection goes through the crawl guard (`rs5m.pub11.crawl_guard`, installed in img2dataset's
workers): address rules at connect time, checked redirects, size and time bounds, per-host pacing
(`rs5m.pub11.crawl_pacing`), robots.txt, Retry-After and backoff.

Ledger (stage `download`): a row is *downloaded* when img2dataset fetched its bytes (status
`success`, or `failed_to_resize`, which the invalid stage turns into an `invalid_*` reason, since
the bytes arrived but are not an image). Other rows are dropped: `robots_disallowed` (robots.txt or
an X-Robots-Tag opt-out), `blocked_address`, `blocked_redirect` (detail: the hop's URL),
`download_too_large`, `download_timeout`, `rate_limited`, `download_failed` (detail: the error
message) or, should a shard have crashed, `download_missing`. After a retry the latest attempt of a
uid counts. Rows of a source that maps a `sha256` column (`sources.<name>.columns.sha256`) are
fetched in an img2dataset run of their own with `verify_hash`: bytes of another digest are
dropped as `hash_mismatch`.

The stage's settings: `DownloadSettings.from_config(config)`, each field named as its config key.

Size: one stage's job from config to ledger (settings, guard settings, the img2dataset runs and
their proxy, URL lists with expected digests, the status tables); the fetching itself lives in
crawl_guard and crawl_pacing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rs5m import columns as col
from rs5m.ledger import Ledger, StageStats
from rs5m.pub11.crawl_guard import CrawlSettings, reason_of
from rs5m.pub11.crawl_pacing import part_rate, spread_order
from rs5m.pub11.sources import pool_hash_columns
from rs5m.pub11.urls import url_host
from rs5m.reasons import reasons_of

log = logging.getLogger(__name__)

STAGE = "download"
SUCCESS = "success"
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_RESIZE = "failed_to_resize"
FETCHED = (SUCCESS, FAILED_TO_RESIZE)
# The columns img2dataset carries from the input into every status row.
CARRIED = [col.UID, col.SOURCE]
# Every ledger reason of the stage (the audit refuses others).
REASONS = reasons_of(STAGE)
# img2dataset's error message when `verify_hash` finds other bytes than the pool described.
HASH_MISMATCH_MESSAGE = "hash mismatch"
# The column of the expected digest in a URL list (img2dataset's `verify_hash` names it by hash type).
SHA256 = "sha256"
STATUS_FILE = re.compile(r"^(\d+)\.parquet$")


def format_user_agent(template: str, contact_url: str) -> str:
    """`download.user_agent` with {version} (this package's) and {contact_url} filled in."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("rs5m")
    except PackageNotFoundError:
        package_version = "0"
    return template.format(version=package_version, contact_url=contact_url)


@dataclass(frozen=True)
class DownloadSettings:
    """The download stage's settings, each field named as its config key: `download.*` (but
    `processes`, which is the rule's threads), `images.max_pixels`, `urls.allowed_networks`,
    `urls.blocked_suffixes`, `urls.max_length` and the top-level `parts`; then what the rule derives
    from the config and the run folder. Built by `from_config` over the validated config (every
    default filled in from config/schema.yaml: no defaults here)."""

    thread_count: int
    image_size: int
    resize_mode: str
    resize_only_if_bigger: bool
    encode_format: str
    encode_quality: int
    skip_reencode: bool
    timeout: int
    retries: int
    disallowed_header_directives: list
    user_agent_token: str | None
    number_sample_per_shard: int
    proxy: str | None
    proxy_server: str | None
    max_redirects: int
    max_bytes: int
    deadline: float
    per_host_rate: float
    per_host_burst: float
    parts_per_host: int
    max_retry_wait: float
    retry_backoff: float
    robots_txt: bool
    user_agent: str
    contact_url: str
    politeness: str
    min_rate: float
    per_host_rate_max: float
    delay_factor: float
    max_pixels: int  # images.max_pixels
    allowed_networks: list  # urls.*
    blocked_suffixes: list
    max_length: int
    parts: int
    # {source: its native sha256 column} (sources.<name>.columns.sha256, `pool_hash_columns`)
    verify_sha256: dict
    # folders of the run shared by all parts and retries: robots.txt files, the stage-wide per-host
    # schedules, the fetch times per host and part (None: kept per job, or not at all)
    robots_cache: str | None
    host_schedule: str | None
    host_timing: str | None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        robots_cache: str | None = None,
        host_schedule: str | None = None,
        host_timing: str | None = None,
    ) -> DownloadSettings:
        download = {key: value for key, value in config["download"].items() if key != "processes"}
        settings = cls(
            **download,
            max_pixels=config["images"]["max_pixels"],
            allowed_networks=config["urls"]["allowed_networks"],
            blocked_suffixes=config["urls"]["blocked_suffixes"],
            max_length=config["urls"]["max_length"],
            parts=config["parts"],
            verify_sha256=pool_hash_columns(config["sources"], "sha256"),
            robots_cache=robots_cache,
            host_schedule=host_schedule,
            host_timing=host_timing,
        )
        if settings.politeness == "adaptive" and not 0 < settings.min_rate <= settings.per_host_rate_max:
            raise ValueError(
                "download.politeness adaptive needs 0 < download.min_rate <= download.per_host_rate_max, "
                f"got {settings.min_rate} and {settings.per_host_rate_max}"
            )
        return settings

    def as_params(self) -> dict[str, Any]:
        """The fields as a plain dict, for a rule's params (Snakemake compares params by their repr
        and reruns a job when one changes; it cannot see into other objects)."""
        return asdict(self)


def crawl_settings(
    settings: DownloadSettings, proxy: str | None, pacing_dir: str | None, timing_dir: str | None
) -> CrawlSettings:
    """The guard's settings for one img2dataset run of a part.

    `proxy`: the one in use (configured or started for the job); `pacing_dir`: the part's per-host
    schedules; `timing_dir`: where its processes append their fetch times per host (None: not kept).
    With `politeness: adaptive` the stage-wide schedule runs at `per_host_rate_max` and each part
    paces a host by its own response times (`rs5m.pub11.crawl_pacing.AdaptivePacer`).
    """
    adaptive = settings.politeness == "adaptive"
    stage_rate = settings.per_host_rate_max if adaptive else settings.per_host_rate
    rate, burst = part_rate(stage_rate, settings.per_host_burst, settings.parts, settings.parts_per_host)
    return CrawlSettings(
        allowed_networks=[str(n) for n in settings.allowed_networks],
        blocked_suffixes=list(settings.blocked_suffixes),
        max_length=settings.max_length,
        max_redirects=settings.max_redirects,
        max_bytes=settings.max_bytes,
        deadline=float(settings.deadline),
        timeout=float(settings.timeout),
        retries=settings.retries,
        retry_backoff=float(settings.retry_backoff),
        max_retry_wait=float(settings.max_retry_wait),
        rate=rate,
        burst=burst,
        host_share=1.0 / max(1, min(settings.parts_per_host, settings.parts)),
        pacing_dir=pacing_dir,
        stage_pacing_dir=str(Path(settings.host_schedule).resolve()) if settings.host_schedule else None,
        stage_rate=float(stage_rate),
        stage_burst=max(1.0, float(settings.per_host_burst)),
        robots_txt=settings.robots_txt,
        robots_cache=str(Path(settings.robots_cache).resolve()) if settings.robots_cache else None,
        user_agent=format_user_agent(settings.user_agent, settings.contact_url),
        proxy=proxy,
        politeness=settings.politeness,
        min_rate=float(settings.min_rate),
        per_host_rate_max=float(settings.per_host_rate_max),
        per_host_rate=float(settings.per_host_rate),
        delay_factor=float(settings.delay_factor),
        timing_dir=timing_dir,
    )


def _environment(proxy: str | None, max_pixels: int | None) -> dict[str, str]:
    """Environment of the img2dataset process (its spawned workers inherit it).

    With a proxy, both http and https go through it and `no_proxy` is cleared, so no request can
    bypass it. OpenCV refuses images above `max_pixels` before allocating them (decompression bombs).
    """
    env = dict(os.environ)
    env.update({"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_DISABLED": "true"})
    if max_pixels:
        env["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(int(max_pixels))
    if proxy:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ftp_proxy", "FTP_PROXY"):
            env[name] = proxy
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(name, None)
    return env


PROXY_STATE = "_proxy_server"  # inside the part's folder: state a local proxy server keeps across jobs


def load_proxy_server(spec: str):
    """The class named by `download.proxy_server` (`package.module:Class`)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"download.proxy_server must be 'package.module:Class', got {spec!r}")
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def _proxy(proxy: str | None, proxy_server: str | None, stall_seconds: float, out_dir: str) -> Iterator[str | None]:
    """The proxy to use: the configured one, or a local proxy server started for this job and stopped
    after it (the demo plugs its loopback web in here, through config)."""
    if not proxy_server:
        yield proxy or None
        return
    server_class = load_proxy_server(proxy_server)
    with server_class(stall_seconds=stall_seconds, state_dir=Path(out_dir) / PROXY_STATE) as server:
        yield server.url


def run_img2dataset(
    url_list: str, out_dir: str, settings: DownloadSettings, processes: int, extend: bool, verify_hash: bool
) -> None:
    """One img2dataset call over a parquet URL list (columns url, uid, source) into WebDataset shards.

    `processes`: img2dataset's (the job's threads). `extend`: add shards to the folder (a retry, or
    the second run of a part) instead of starting it afresh. `verify_hash`: the list has a `sha256`
    column, which img2dataset checks the fetched bytes against.
    """
    timing_dir = str(Path(settings.host_timing, Path(out_dir).name).resolve()) if settings.host_timing else None
    if not extend:
        # img2dataset's own "overwrite" mode deletes its temporary folder along with the output.
        for folder in (out_dir, timing_dir):
            if folder and Path(folder).exists():
                shutil.rmtree(folder)
    arguments = dict(
        url_list=url_list,
        input_format="parquet",
        url_col=col.URL,
        save_additional_columns=list(CARRIED),
        output_format="webdataset",
        output_folder=str(out_dir),
        processes_count=max(1, int(processes)),
        thread_count=settings.thread_count,
        image_size=settings.image_size,
        resize_mode=settings.resize_mode,
        resize_only_if_bigger=settings.resize_only_if_bigger,
        encode_format=settings.encode_format,
        encode_quality=settings.encode_quality,
        skip_reencode=settings.skip_reencode,
        timeout=settings.timeout,
        retries=settings.retries,
        disallowed_header_directives=list(settings.disallowed_header_directives),
        user_agent_token=settings.user_agent_token,
        number_sample_per_shard=settings.number_sample_per_shard,
        extract_exif=False,
        enable_wandb=False,
        incremental_mode="extend" if extend else "incremental",
    )
    if verify_hash:
        arguments.update(verify_hash=[SHA256, "sha256"], compute_hash="sha256")
    stall_seconds = settings.timeout + 5
    with (
        _proxy(settings.proxy, settings.proxy_server, stall_seconds=stall_seconds, out_dir=out_dir) as active_proxy,
        tempfile.TemporaryDirectory(prefix="rs5m-pacing-") as pacing_dir,
    ):
        crawl = crawl_settings(settings, proxy=active_proxy, pacing_dir=pacing_dir, timing_dir=timing_dir)
        log.info(
            "crawl guard: user agent %r, %s politeness, %.3g requests/s per host after a burst of %g, "
            "robots.txt %s, allowed networks %s",
            crawl.user_agent,
            crawl.politeness,
            crawl.rate,
            crawl.burst,
            "on" if crawl.robots_txt else "off",
            crawl.allowed_networks or "none",
        )
        # A process of its own: img2dataset's workers are spawned, and a spawned worker re-imports
        # the parent's main module (a Snakemake script cannot be imported that way); its
        # environment (proxy, pixel cap) is also set there without touching this process's.
        command = [sys.executable, "-c", _IMG2DATASET_MAIN, json.dumps(arguments), crawl.to_json()]
        process = subprocess.Popen(
            command,
            env=_environment(active_proxy, settings.max_pixels),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                log.info("img2dataset: %s", line)
        if process.wait() != 0:
            raise RuntimeError(f"img2dataset exited with status {process.returncode} (see the log above)")


# With one process, the shards run in this process: a spawned pool worker would import
# img2dataset (and torch, through webdataset) a second time, which dominates small jobs.
_IMG2DATASET_MAIN = """
import importlib, json, sys
from img2dataset.distributor import retrier

import functools
from rs5m.pub11.crawl_worker import GuardedDownloader

img2dataset_main = importlib.import_module("img2dataset.main")  # the module; the package exports a function of that name

def run_inline(processes_count, downloader, reader, _, max_shard_retry):
    run = lambda shards: [row for row in shards if not downloader(row)[0]]
    retrier(run, run(reader), max_shard_retry)

if __name__ == "__main__":
    from rs5m.pub11 import bit_depth
    bit_depth.install()  # 16-bit images contrast-normalised, not clipped to white (rs5m.pub11.bit_depth)
    arguments = json.loads(sys.argv[1])
    # every worker fetches through the crawl guard (rs5m.pub11.crawl_guard)
    img2dataset_main.Downloader = functools.partial(GuardedDownloader, crawl_settings=sys.argv[2])
    if arguments["processes_count"] == 1:
        img2dataset_main.multiprocessing_distributor = run_inline
    img2dataset_main.download(**arguments)
"""


def read_status(out_dir: str | Path) -> pa.Table:
    """The latest img2dataset status row of every uid in a download folder (retries come in later shards).

    Columns: uid, source, url, status, error_message, key, shard (the shard's file stem), tar
    (path of the shard's tar as given by `out_dir`), width, height, original_width, original_height.
    """
    out_dir = Path(out_dir)
    tables = []
    for path in sorted(out_dir.glob("*.parquet")):
        match = STATUS_FILE.match(path.name)
        if not match:
            continue
        table = pq.read_table(path)
        keep = [
            c
            for c in (
                col.UID,
                col.SOURCE,
                col.URL,
                "status",
                "error_message",
                "key",
                "width",
                "height",
                "original_width",
                "original_height",
            )
            if c in table.column_names
        ]
        table = table.select(keep)
        table = table.append_column("shard", pa.array([int(match.group(1))] * len(table), pa.int64()))
        table = table.append_column("tar", pa.array([str(out_dir / f"{match.group(1)}.tar")] * len(table), pa.string()))
        tables.append(table)
    if not tables:
        return pa.table(
            {c: pa.array([], pa.string()) for c in (col.UID, col.SOURCE, col.URL, "status", "error_message")}
        )
    status = pa.concat_tables(tables, promote_options="permissive")
    # Latest attempt per uid: sort by shard descending and keep the first row of each uid.
    order = pc.sort_indices(status, sort_keys=[(col.UID, "ascending"), ("shard", "descending")])
    status = status.take(order)
    uids = status.column(col.UID).to_pylist()
    first = [i for i, uid in enumerate(uids) if i == 0 or uid != uids[i - 1]]
    return status.take(pa.array(first, pa.int64()))


def download_ledger(urls: str | Path, out_dir: str | Path, stats: str | Path, drops: str | Path) -> list[StageStats]:
    """Write the download ledger of a part from its input URLs and the latest status of each uid."""
    wanted = pq.read_table(urls, columns=[col.UID, col.SOURCE])
    status = read_status(out_dir)
    by_uid = {
        uid: (state, message)
        for uid, state, message in zip(
            status.column(col.UID).to_pylist(),
            status.column("status").to_pylist(),
            status.column("error_message").to_pylist(),
        )
    }
    ledger = Ledger(STAGE)
    for uid, source in zip(wanted.column(col.UID).to_pylist(), wanted.column(col.SOURCE).to_pylist()):
        state, message = by_uid.get(uid, (None, None))
        if state in FETCHED:
            ledger.keep(source)
            continue
        reason, message = failure_reason(state, message)
        ledger.drop(uid, source, reason, message)
    result = ledger.write(stats, drops)
    for entry in result:
        log.info("%s %s: %d in, %d fetched, dropped %s", STAGE, entry.source, entry.rows_in, entry.kept, entry.dropped)
    return result


def failure_reason(state: str | None, message: str | None) -> tuple[str, str | None]:
    """(ledger reason, detail) of a row that img2dataset did not fetch."""
    if state is None:
        return "download_missing", "no status row (img2dataset shard failed)"
    # Only the guard writes "<reason>: <detail>" messages (crawl_guard.error_message): no text a
    # server sent can choose a reason.
    guard = reason_of(message)
    if guard is not None:
        return guard
    if message == HASH_MISMATCH_MESSAGE:
        return "hash_mismatch", None
    return "download_failed", message


def write_url_list(table: pa.Table, folder: str, name: str = "urls.parquet") -> str:
    """The URL list in the order that spreads each host's requests over the run."""
    path = os.path.join(folder, name)
    hosts = [url_host(u or "") for u in table.column(col.URL).to_pylist()]
    order = spread_order(hosts, table.column(col.UID).to_pylist())
    carried = [col.URL, *CARRIED, *([SHA256] if SHA256 in table.column_names else [])]
    pq.write_table(table.select(carried).take(pa.array(order, pa.int64())), path)
    return path


def read_url_rows(urls: str, verify_sha256: Mapping[str, str]) -> pa.Table:
    """A part's URL rows (url, uid, source) and, where `verify_sha256` maps the row's source to a
    native column, the expected `sha256` (lower-case hex; null where the pool gives none)."""
    table = pq.read_table(urls, columns=[col.URL, *CARRIED, *([col.NATIVE] if verify_sha256 else [])])
    if not verify_sha256:
        return table
    expected = []
    for source, native in zip(table.column(col.SOURCE).to_pylist(), table.column(col.NATIVE).to_pylist()):
        value = json.loads(native).get(verify_sha256[source]) if source in verify_sha256 and native else None
        value = str(value).strip().lower() if value is not None else ""
        expected.append(value if re.fullmatch(r"[0-9a-f]{64}", value) else None)
    return table.drop_columns([col.NATIVE]).append_column(SHA256, pa.array(expected, pa.string()))


def fetch(table: pa.Table, folder: str, out_dir: str, settings: DownloadSettings, processes: int, extend: bool) -> None:
    """img2dataset over `table`'s URLs; rows with an expected `sha256` in a run of their own that
    verifies it (img2dataset's verify_hash takes a missing digest for a mismatch)."""
    if SHA256 not in table.column_names:
        groups = [(table, False)]
    else:
        has_hash = pc.is_valid(table.column(SHA256))
        groups = [(table.filter(pc.invert(has_hash)).drop_columns([SHA256]), False), (table.filter(has_hash), True)]
    for rows, verify in [g for g in groups if len(g[0])]:
        name = "verified.parquet" if verify else "urls.parquet"
        run_img2dataset(write_url_list(rows, folder, name), out_dir, settings, processes, extend, verify)
        extend = True  # a second run adds shards to the first's


def download_part(
    urls: str, out_dir: str, stats: str, drops: str, threads: int, settings: DownloadSettings
) -> list[StageStats]:
    """Download every URL of a part (img2dataset `processes` = the job's threads) and write its ledger."""
    table = read_url_rows(urls, settings.verify_sha256)
    if len(table):
        with tempfile.TemporaryDirectory(prefix="rs5m-urls-") as folder:
            fetch(table, folder, out_dir, settings, threads, False)
    else:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    return download_ledger(urls, out_dir, stats, drops)
