"""Benchmark the download stage against a direct img2dataset call on the same loopback URLs.

Both fetch the same N URLs from the demo web on 127.0.0.1 with the same img2dataset settings (2
processes x 16 threads, webdataset, keep_ratio_largest 4096, uid and source carried); the stage
adds reading its part, the ledger, its own process around img2dataset and the crawl guard in every
worker (address checks, checked redirects, size and deadline bounds, robots.txt, and per-host
pacing with a rate high enough not to bind, so that its bookkeeping is measured, not its waits).
Runs alternate and the best of each is kept (the machine is shared). Target: stage / direct <= 1.10.

`--proxy` also times direct img2dataset through a minimal resolving forward proxy (the other way
to guard the crawl, rejected by this measurement).

    PYTHONPATH=workflow python benchmarks/bench_download.py [--small] [--proxy]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.configured import defaults
from rs5m.demo.web import DemoWebServer, render_image
from rs5m.pub11.download_part import DownloadSettings, download_part

DISTINCT_IMAGES = 100  # rendered once; URLs differ by a query the server ignores
SETTINGS = dict(
    thread_count=16,
    image_size=4096,
    resize_mode="keep_ratio_largest",
    resize_only_if_bigger=True,
    encode_quality=95,
    skip_reencode=True,
    timeout=10,
    retries=0,
    number_sample_per_shard=10000,
)


GUARD = dict(allowed_networks=["127.0.0.1/32"], per_host_rate=1e6, per_host_burst=1e6)


def stage_settings() -> DownloadSettings:
    """The stage's settings as rules/pub11_download.smk builds them from the configured defaults,
    one part, with this benchmark's img2dataset settings and guard on top."""
    configured = DownloadSettings.from_config({**defaults(), "parts": 1})
    return dataclasses.replace(configured, **SETTINGS, **GUARD)


class _Forward(BaseHTTPRequestHandler):
    """Forward proxy: resolves the target itself (where a guard would check it) and relays the answer."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        upstream.request(
            "GET",
            target.path + ("?" + target.query if target.query else ""),
            headers={"User-Agent": self.headers.get("User-Agent", "")},
        )
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()


def direct(url_list: Path, out_dir: Path, processes: int, proxy: str | None = None) -> None:
    arguments = dict(
        url_list=str(url_list),
        input_format="parquet",
        url_col="url",
        output_format="webdataset",
        output_folder=str(out_dir),
        processes_count=processes,
        save_additional_columns=["uid", "source"],
        extract_exif=False,
        enable_wandb=False,
        **SETTINGS,
    )
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    if proxy:
        env.update(http_proxy=proxy, HTTP_PROXY=proxy)
    code = "import json, sys\nfrom img2dataset import download\nif __name__ == '__main__':\n    download(**json.loads(sys.argv[1]))"
    subprocess.run(
        [sys.executable, "-c", code, json.dumps(arguments)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="300 URLs instead of 2,000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--proxy", action="store_true", help="also time direct img2dataset through a forward proxy")
    args = parser.parse_args()
    count = 300 if args.small else 2000
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        os.environ.pop(name, None)  # loopback only, straight to the server
    for n in range(DISTINCT_IMAGES):
        render_image("rs", n, None)

    root = Path(tempfile.mkdtemp(prefix="bench-download-"))
    with DemoWebServer() as server:
        urls = [f"{server.url}/img/rs/{i % DISTINCT_IMAGES}.jpg?rep={i}" for i in range(count)]
        uids = [make_uid("laion2b", url) for url in urls]
        table = pa.table({"uid": uids, "source": ["laion2b"] * count, "url": urls})
        pq.write_table(table, root / "urls.parquet")
        names = ["direct", "stage"] + (["proxy"] if args.proxy else [])
        best = {name: float("inf") for name in names}
        forward = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
        forward.daemon_threads = True
        threading.Thread(target=forward.serve_forever, daemon=True).start()
        ratios = []  # stage / direct of each round: adjacent runs share the machine's load of the moment
        for round_index in range(args.rounds):
            timed = {}
            for name in names if round_index % 2 == 0 else reversed(names):
                out_dir = root / name
                shutil.rmtree(out_dir, ignore_errors=True)
                started = time.perf_counter()
                if name == "direct":
                    direct(root / "urls.parquet", out_dir, processes=2)
                elif name == "proxy":
                    direct(
                        root / "urls.parquet",
                        out_dir,
                        processes=2,
                        proxy=f"http://127.0.0.1:{forward.server_address[1]}",
                    )
                else:
                    download_part(
                        str(root / "urls.parquet"),
                        str(out_dir),
                        str(root / "stage.stats.json"),
                        str(root / "stage.drops.parquet"),
                        threads=2,
                        settings=stage_settings(),
                    )
                elapsed = time.perf_counter() - started
                best[name] = min(best[name], elapsed)
                timed[name] = elapsed
                print(
                    f"round {round_index + 1} {name:6s}: {elapsed:6.1f} s ({count / elapsed:5.0f} images/s)", flush=True
                )
            ratios.append(timed["stage"] / timed["direct"])
        forward.shutdown()
    (stats,) = json.loads((root / "stage.stats.json").read_text())
    print(f"stage ledger: {stats['kept']} of {stats['rows_in']} fetched, dropped {stats['dropped']}")
    print(
        f"best: stage {best['stage']:.1f} s, direct img2dataset {best['direct']:.1f} s, "
        f"overhead ratio {best['stage'] / best['direct']:.2f} (target <= 1.10); per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)}, median {sorted(ratios)[len(ratios) // 2]:.2f}"
    )
    if args.proxy:
        print(
            f"direct img2dataset through a forward proxy {best['proxy']:.1f} s, "
            f"ratio {best['proxy'] / best['direct']:.2f}"
        )

    shutil.rmtree(root)


if __name__ == "__main__":
    main()
