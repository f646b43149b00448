"""Benchmark the download stage's politeness: the fixed per-host rate against the adaptive one.

Four loopback hosts, each its own address and server (127.0.0.11-14): `fast` answers in 5 ms,
`medium` in 50 ms, `slow` in 200 ms, `busy` answers 429 to every image. The real download stage
(one part, img2dataset with 2 processes x 16 threads and 16 URLs per shard, so both processes
share the part's pacing files, the crawl guard in every worker, robots.txt on) fetches the same URLs once with `download.politeness: fixed` and once `adaptive`, both with the
schema's defaults for every other key (per_host_rate 2, per_host_burst 4, min_rate 0.2,
per_host_rate_max 10, delay_factor 5). Printed: the stage's wall time (makespan; img2dataset's
start-up included), the time from the first request to the last, when each host's last request
arrived (from the stage's start), the most requests a host got in any window of 1 s and of 5 s (from the
servers' own clocks) beside the bound of that window (rate x window + burst), and the slowest
hosts as `rs5m status` reads them from the fetch times the stage records.
Target: adaptive makespan < fixed, and no window above its bound.

    PYTHONPATH=workflow python benchmarks/bench_politeness.py [--small]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.configured import defaults
from rs5m.demo.web import render_image
from rs5m.plan.status import slowest_hosts
from rs5m.pub11.download_part import DownloadSettings, download_part

IMAGE = render_image("rs", 3, None)
HOSTS = {  # name: (address, latency in seconds, answers 429)
    "fast": ("127.0.0.11", 0.005, False),
    "medium": ("127.0.0.12", 0.05, False),
    "slow": ("127.0.0.13", 0.2, False),
    "busy": ("127.0.0.14", 0.005, True),
}
COUNTS = {
    "small": {"fast": 60, "medium": 20, "slow": 8, "busy": 5},
    "full": {"fast": 240, "medium": 60, "slow": 20, "busy": 8},
}
WINDOWS = (1.0, 5.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        server = self.server
        with server.lock:
            server.arrivals.append(time.time())
        time.sleep(server.latency)
        if self.path == "/robots.txt":
            status, body = 200, b"User-agent: *\nAllow: /\n"
        elif server.refuses:
            status, body = 429, b"slow down\n"
        else:
            status, body = 200, IMAGE
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(address: str, latency: float, refuses: bool) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, 0), _Handler)
    server.daemon_threads = True
    server.lock, server.arrivals, server.latency, server.refuses = threading.Lock(), [], latency, refuses
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def most_in_window(stamps: list[float], window: float) -> int:
    """The most arrivals within any `window` seconds."""
    stamps, most, first = sorted(stamps), 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] > window:
            first += 1
        most = max(most, last - first + 1)
    return most


def run(mode: str, counts: dict[str, int], root: Path) -> dict:
    servers = {name: serve(*plan) for name, plan in HOSTS.items()}
    urls = []
    for name, server in servers.items():
        address, port = server.server_address[:2]
        urls += [f"http://{address}:{port}/img/{n}.jpg" for n in range(counts[name])]
    uids = [make_uid("laion2b", url) for url in urls]
    folder = root / mode
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"uid": uids, "source": ["laion2b"] * len(urls), "url": urls}), folder / "urls.parquet")
    configured = DownloadSettings.from_config({**defaults(), "parts": 1})
    settings = dataclasses.replace(
        configured,
        politeness=mode,
        thread_count=16,
        number_sample_per_shard=16,
        allowed_networks=["127.0.0.0/24"],
        robots_cache=str(folder / "robots"),
        host_timing=str(folder / "results" / "pub11" / "host_timing"),
    )
    started = time.time()
    download_part(
        str(folder / "urls.parquet"),
        str(folder / "0000"),
        str(folder / "0000.stats.json"),
        str(folder / "0000.drops.parquet"),
        threads=2,
        settings=settings,
    )
    makespan = time.time() - started
    for server in servers.values():
        server.shutdown()
        server.server_close()
    bound_rate = settings.per_host_rate_max if mode == "adaptive" else settings.per_host_rate
    arrivals = [stamp for server in servers.values() for stamp in server.arrivals]
    return {
        "makespan": makespan,
        "crawl": max(arrivals) - min(arrivals),
        "last": {name: max(s.arrivals) - started for name, s in servers.items()},
        "requests": {name: len(s.arrivals) for name, s in servers.items()},
        "windows": {name: [most_in_window(s.arrivals, w) for w in WINDOWS] for name, s in servers.items()},
        "bounds": [bound_rate * w + settings.per_host_burst for w in WINDOWS],
        "slowest": slowest_hosts(folder, len(HOSTS)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="93 URLs instead of 328")
    args = parser.parse_args()
    counts = COUNTS["small" if args.small else "full"]
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        os.environ.pop(name, None)  # loopback only, straight to the servers
    root = Path(tempfile.mkdtemp(prefix="bench-politeness-"))
    print(
        f"URLs per host: {counts}; img2dataset 2 processes x 16 threads, 16 URLs per shard; schema defaults otherwise"
    )
    results = {mode: run(mode, counts, root) for mode in ("fixed", "adaptive")}
    header = f"{'host':8} {'latency':>8} {'URLs':>5}"
    for mode in results:
        header += f" | {mode + ' last s':>15} {'max/1 s':>8} {'max/5 s':>8}"
    print(header)
    for name, (_, latency, refuses) in HOSTS.items():
        line = f"{name:8} {latency * 1000:6.0f}ms {counts[name]:>5}"
        for result in results.values():
            line += f" | {result['last'][name]:15.1f} {result['windows'][name][0]:>8} {result['windows'][name][1]:>8}"
        print(line + ("  (429)" if refuses else ""))
    held = True
    for mode, result in results.items():
        bounds = ", ".join(f"{b:g} per {w:g} s" for b, w in zip(result["bounds"], WINDOWS))
        over = [n for n, counts_ in result["windows"].items() if any(c > b for c, b in zip(counts_, result["bounds"]))]
        held &= not over
        print(
            f"{mode}: makespan {result['makespan']:.1f} s (first to last request {result['crawl']:.1f} s); "
            f"bound {bounds}; hosts above it: {over or 'none'}"
        )
        print(
            "  slowest hosts (rs5m status): "
            + ", ".join(f"{h['host']} {h['mean_fetch_s'] * 1000:.0f} ms x {h['requests']}" for h in result["slowest"])
        )
    ratio = results["adaptive"]["makespan"] / results["fixed"]["makespan"]
    crawl = results["adaptive"]["crawl"] / results["fixed"]["crawl"]
    print(
        f"adaptive / fixed: makespan {ratio:.2f}, first to last request {crawl:.2f} (target < 1); "
        f"every window within its bound: {held}"
    )


if __name__ == "__main__":
    main()
