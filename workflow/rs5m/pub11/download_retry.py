"""Download retry: fetch again only the URLs of a part whose latest attempt failed, then rewrite its ledger.

Reads `results/pub11/urldedup/{part}.parquet` and the part's download folder; writes new shards into
that folder (img2dataset's `extend` mode), the part's ledger and a retry report.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pyarrow as pa

from rs5m import columns as col
from rs5m.pub11.crawl_guard import PERMANENT
from rs5m.pub11.download_part import (
    FETCHED,
    DownloadSettings,
    download_ledger,
    failure_reason,
    fetch,
    read_status,
    read_url_rows,
)

log = logging.getLogger(__name__)
# Failures a retry cannot change: the guard's permanent ones, and bytes other than the pool's.
NOT_RETRIED = (*PERMANENT, "hash_mismatch")


def retry_failed(
    urls: str,
    out_dir: str,
    stats: str,
    drops: str,
    report: str,
    threads: int,
    settings: DownloadSettings,
) -> dict:
    """Fetch again only the URLs of a part whose latest attempt failed; rewrite the part's ledger.

    New attempts go into new shards of the same folder (img2dataset's `extend` mode), so nothing
    already downloaded is fetched again; `read_status` then takes the latest attempt of each uid.
    Opt-outs (robots.txt, X-Robots-Tag) and what a retry cannot change (`crawl_guard.PERMANENT`:
    blocked addresses and redirects, oversized images) are not retried, nor bytes that failed
    their pool's sha256 (`hash_mismatch`); the others are verified again (`settings.verify_sha256`).
    """
    status = read_status(out_dir)
    wanted = read_url_rows(urls, settings.verify_sha256)
    fetched = {
        uid
        for uid, state, message in zip(
            status.column(col.UID).to_pylist(),
            status.column("status").to_pylist(),
            status.column("error_message").to_pylist(),
        )
        if state in FETCHED or (state is not None and failure_reason(state, message)[0] in NOT_RETRIED)
    }
    failed = wanted.filter(pa.array([uid not in fetched for uid in wanted.column(col.UID).to_pylist()]))
    if len(failed):
        with tempfile.TemporaryDirectory(prefix="rs5m-retry-") as folder:
            fetch(failed, folder, out_dir, settings, threads, True)
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
