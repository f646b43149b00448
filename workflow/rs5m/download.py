"""Download stage: one img2dataset run per part, and a retry of only the URLs that failed.

Reads `results/pub11/urldedup/{part}.parquet`; writes `results/pub11/download/{part}/` (WebDataset shards + status parquet, `uid` carried).

Ledger (stage `download`): a row is *downloaded* when img2dataset fetched its bytes (status
`success`, or `failed_to_resize`, which the invalid stage turns into an `invalid_*` reason, since
the bytes arrived but are not an image). Other rows are dropped: `robots_disallowed` (an
X-Robots-Tag opt-out), `download_failed` (detail: img2dataset's error message) or, should a shard
have crashed, `download_missing`. After a retry the latest attempt of a uid counts.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rs5m import columns as col
from rs5m.ledger import StageStats, drops_table, write_drops, write_stats

log = logging.getLogger(__name__)

STAGE = "download"
SUCCESS = "success"
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_RESIZE = "failed_to_resize"
FETCHED = (SUCCESS, FAILED_TO_RESIZE)
ROBOTS_MESSAGE = "disallowed by X-Robots-Tag"
# The columns img2dataset carries from the input into every status row.
CARRIED = [col.UID, col.SOURCE]
STATUS_FILE = re.compile(r"^(\d+)\.parquet$")


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
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            env[name] = proxy
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(name, None)
    return env


DEMO_STATE = "_demo_web"  # inside the part's folder: the demo web's memory of flaky paths


@contextlib.contextmanager
def _proxy(proxy: str | None, demo_server: bool, stall_seconds: float, out_dir: str) -> Iterator[str | None]:
    """The proxy to use: the configured one, or a demo web started for this job and stopped after it."""
    if not demo_server:
        yield proxy or None
        return
    from rs5m.demo_web import DemoWebServer

    with DemoWebServer(stall_seconds=stall_seconds, state_dir=Path(out_dir) / DEMO_STATE) as server:
        yield server.url


def run_img2dataset(
    url_list: str,
    out_dir: str,
    processes: int = 1,
    thread_count: int = 16,
    image_size: int = 4096,
    resize_mode: str = "keep_ratio_largest",
    resize_only_if_bigger: bool = True,
    encode_format: str = "jpg",
    encode_quality: int = 95,
    skip_reencode: bool = True,
    timeout: int = 10,
    retries: int = 0,
    disallowed_header_directives: Sequence[str] = ("noai", "noimageai", "noindex", "noimageindex"),
    user_agent_token: str | None = None,
    number_sample_per_shard: int = 10000,
    max_pixels: int | None = None,
    proxy: str | None = None,
    demo_server: bool = False,
    extend: bool = False,
) -> None:
    """One img2dataset call over a parquet URL list (columns url, uid, source) into WebDataset shards."""
    if not extend and Path(out_dir).exists():
        # img2dataset's own "overwrite" mode deletes its temporary folder along with the output.
        shutil.rmtree(out_dir)
    arguments = dict(
        url_list=url_list,
        input_format="parquet",
        url_col=col.URL,
        save_additional_columns=list(CARRIED),
        output_format="webdataset",
        output_folder=str(out_dir),
        processes_count=max(1, int(processes)),
        thread_count=int(thread_count),
        image_size=int(image_size),
        resize_mode=resize_mode,
        resize_only_if_bigger=bool(resize_only_if_bigger),
        encode_format=encode_format,
        encode_quality=int(encode_quality),
        skip_reencode=bool(skip_reencode),
        timeout=int(timeout),
        retries=int(retries),
        disallowed_header_directives=list(disallowed_header_directives),
        user_agent_token=user_agent_token,
        number_sample_per_shard=int(number_sample_per_shard),
        extract_exif=False,
        enable_wandb=False,
        incremental_mode="extend" if extend else "incremental",
    )
    with _proxy(proxy, demo_server, stall_seconds=timeout + 5, out_dir=out_dir) as active_proxy:
        # A process of its own: img2dataset's workers are spawned, and a spawned worker re-imports
        # the parent's main module (a Snakemake script cannot be imported that way); its
        # environment (proxy, pixel cap) is also set there without touching this process's.
        command = [sys.executable, "-c", _IMG2DATASET_MAIN, json.dumps(arguments)]
        process = subprocess.Popen(
            command, env=_environment(active_proxy, max_pixels), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
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

img2dataset_main = importlib.import_module("img2dataset.main")  # the module; the package exports a function of that name

def run_inline(processes_count, downloader, reader, _, max_shard_retry):
    run = lambda shards: [row for row in shards if not downloader(row)[0]]
    retrier(run, run(reader), max_shard_retry)

if __name__ == "__main__":
    from rs5m import bit_depth
    bit_depth.install()  # 16-bit images contrast-normalised, not clipped to white (rs5m.bit_depth)
    arguments = json.loads(sys.argv[1])
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
        keep = [c for c in (col.UID, col.SOURCE, col.URL, "status", "error_message", "key", "width", "height",
                            "original_width", "original_height") if c in table.column_names]
        table = table.select(keep)
        table = table.append_column("shard", pa.array([int(match.group(1))] * len(table), pa.int64()))
        table = table.append_column("tar", pa.array([str(out_dir / f"{match.group(1)}.tar")] * len(table), pa.string()))
        tables.append(table)
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in (col.UID, col.SOURCE, col.URL, "status", "error_message")})
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
    per_source: dict[str, StageStats] = {}
    drop_rows = []
    for uid, source in zip(wanted.column(col.UID).to_pylist(), wanted.column(col.SOURCE).to_pylist()):
        entry = per_source.setdefault(source, StageStats(STAGE, source))
        entry.rows_in += 1
        state, message = by_uid.get(uid, (None, None))
        if state in FETCHED:
            entry.kept += 1
            continue
        if state is None:
            reason, message = "download_missing", "no status row (img2dataset shard failed)"
        elif message and ROBOTS_MESSAGE in message:
            reason = "robots_disallowed"
        else:
            reason = "download_failed"
        entry.drop(reason)
        drop_rows.append({"uid": uid, "source": source, "stage": STAGE, "reason": reason, "detail": message})
    write_drops(drops, drops_table(drop_rows))
    result = write_stats(stats, [per_source[s] for s in sorted(per_source)])
    for entry in result:
        log.info("%s %s: %d in, %d fetched, dropped %s", STAGE, entry.source, entry.rows_in, entry.kept, entry.dropped)
    return result


def _write_url_list(table: pa.Table, folder: str) -> str:
    path = os.path.join(folder, "urls.parquet")
    pq.write_table(table.select([col.URL, *CARRIED]), path)
    return path


def download_part(urls: str, out_dir: str, stats: str, drops: str, threads: int = 1, **options) -> list[StageStats]:
    """Download every URL of a part (img2dataset `processes` = the job's threads) and write its ledger.

    `options` are `run_img2dataset`'s keyword arguments (config section `download`, plus
    `max_pixels` from `images`).
    """
    table = pq.read_table(urls, columns=[col.URL, *CARRIED])
    if len(table):
        with tempfile.TemporaryDirectory(prefix="rs5m-urls-") as folder:
            run_img2dataset(_write_url_list(table, folder), out_dir, processes=threads, **options)
    else:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    return download_ledger(urls, out_dir, stats, drops)


def retry_failed(
    urls: str, out_dir: str, stats: str, drops: str, report: str, threads: int = 1, **options
) -> dict:
    """Fetch again only the URLs of a part whose latest attempt failed; rewrite the part's ledger.

    New attempts go into new shards of the same folder (img2dataset's `extend` mode), so nothing
    already downloaded is fetched again; `read_status` then takes the latest attempt of each uid.
    X-Robots-Tag opt-outs are not retried.
    """
    status = read_status(out_dir)
    wanted = pq.read_table(urls, columns=[col.URL, *CARRIED])
    fetched = {
        uid
        for uid, state, message in zip(
            status.column(col.UID).to_pylist(),
            status.column("status").to_pylist(),
            status.column("error_message").to_pylist(),
        )
        if state in FETCHED or (message and ROBOTS_MESSAGE in message)
    }
    failed = wanted.filter(pa.array([uid not in fetched for uid in wanted.column(col.UID).to_pylist()]))
    if len(failed):
        with tempfile.TemporaryDirectory(prefix="rs5m-retry-") as folder:
            run_img2dataset(_write_url_list(failed, folder), out_dir, processes=threads, extend=True, **options)
    ledger = download_ledger(urls, out_dir, stats, drops)
    summary = {
        "retried": len(failed),
        "dropped": sum(sum(entry.dropped.values()) for entry in ledger),
        "fetched": sum(entry.kept for entry in ledger),
    }
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(json.dumps(summary, indent=1) + "\n")
    log.info("retry of %s: %s", out_dir, summary)
    return summary
