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
import pyarrow.parquet as pq

from rs5m import columns as col
from rs5m.pub11.crawl_guard import PERMANENT
from rs5m.pub11.download_part import (
    CARRIED,
    FETCHED,
    download_ledger,
    failure_reason,
    read_status,
    run_img2dataset,
    write_url_list,
)

log = logging.getLogger(__name__)


def retry_failed(urls: str, out_dir: str, stats: str, drops: str, report: str, threads: int, **options) -> dict:
    """Fetch again only the URLs of a part whose latest attempt failed; rewrite the part's ledger.

    New attempts go into new shards of the same folder (img2dataset's `extend` mode), so nothing
    already downloaded is fetched again; `read_status` then takes the latest attempt of each uid.
    Opt-outs (robots.txt, X-Robots-Tag) and what a retry cannot change (`crawl_guard.PERMANENT`:
    blocked addresses and redirects, oversized images) are not retried.
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
        if state in FETCHED or (state is not None and failure_reason(state, message)[0] in PERMANENT)
    }
    failed = wanted.filter(pa.array([uid not in fetched for uid in wanted.column(col.UID).to_pylist()]))
    if len(failed):
        with tempfile.TemporaryDirectory(prefix="rs5m-retry-") as folder:
            run_img2dataset(write_url_list(failed, folder), out_dir, processes=threads, extend=True, **options)
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
