"""Crawl-guard scenarios, run by tests/test_crawl_guard.py INSIDE a sealed network namespace
(tests/sealed.py): never run this file directly on a machine with a network.

    python tests/crawl_scenarios.py guard|pacing WORKDIR

Starts loopback servers, runs the real download stage (rs5m.pub11.download_part.download_part, img2dataset
with spawned workers) and writes WORKDIR/result.json: the stage's drops and stats, the bytes kept
per URL (sha256) and what each server saw.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import select
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from schema_defaults import download_settings, guard_settings

from rs5m.columns import make_uid
from rs5m.demo.web import render_image
from rs5m.pub11.download_part import download_part, failure_reason, read_status

IMAGE = render_image("rs", 3, None)
BIG = 300_000
MAX_BYTES = 100_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status, body=b"", headers=None, content_type="image/jpeg"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        server = self.server
        target = urlsplit(self.path)
        with server.lock:
            server.log.append(
                {
                    "time": time.time(),
                    "host": self.headers.get("Host"),
                    "path": self.path,
                    "user_agent": self.headers.get("User-Agent"),
                }
            )
            server.seen[target.path] = server.seen.get(target.path, 0) + 1
            seen = server.seen[target.path]
        path = target.path
        if path == "/robots.txt":
            return self._send(200, server.robots.encode(), content_type="text/plain")
        if path == "/redirect":
            return self._send(302, headers={"Location": parse_qs(target.query)["to"][0]})
        if path == "/drip.jpg":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            for byte in IMAGE[:100]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return None
        if path == "/big.jpg":
            return self._send(200, b"\xff" * BIG)
        if path == "/big-stream.jpg":
            self.send_response(200)
            self.end_headers()
            for _ in range(BIG // 10_000):
                self.wfile.write(b"\xff" * 10_000)
            return None
        if path == "/once-429.jpg" and seen == 1:
            return self._send(429, b"slow down\n", {"Retry-After": "1"}, "text/plain")
        if path == "/long-429.jpg":
            return self._send(429, b"slow down\n", {"Retry-After": "3600"}, "text/plain")
        return self._send(200, IMAGE)


class LoggingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, robots: str = ""):
        super().__init__((address, 0), _Handler)
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.seen: dict[str, int] = {}
        self.robots = robots
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Recorder(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections.append(self.client_address[0])
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(IMAGE) + IMAGE)


class InternalServer(socketserver.ThreadingTCPServer):
    """The "internal" service on 127.0.0.2: records every TCP connection it accepts, answers an image."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.2", 0), _Recorder)
        self.connections: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Tarpit(socketserver.BaseRequestHandler):
    """Answers robots.txt with a 404 and holds every other request: `/continue` sends
    `100 Continue` responses, `/trailers` a chunked image followed by trailer lines, `/drip`
    (and `/robots-drip/...` on the robots port) the header one byte per 0.5 s, each for ever.
    Logs when each connection opened and when the client closed it."""

    def handle(self) -> None:
        sock = self.request
        entry = {"opened": time.time(), "closed": None, "path": None}
        with self.server.lock:
            self.server.log.append(entry)
        request = b""
        while b"\r\n\r\n" not in request:
            data = sock.recv(4096)
            if not data:
                entry["closed"] = time.time()
                return
            request += data
        path = request.split(b" ")[1].decode()
        entry["path"] = path
        if path == "/robots.txt" and not self.server.robots_drip:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            entry["closed"] = time.time()
            return
        if path.startswith("/continue"):
            pieces = itertools.repeat(b"HTTP/1.1 100 Continue\r\n\r\n")
            interval = 0.4  # slower than MAX_INFORMATIONAL in the deadline: the deadline ends it
        elif path.startswith("/trailers"):
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
            body = b"%x\r\n" % len(IMAGE) + IMAGE + b"\r\n0\r\n"
            pieces = itertools.chain([head + body], (b"X-Trailer-%d: x\r\n" % i for i in itertools.count()))
            interval = 0.2
        else:  # drip, and robots.txt on the robots port
            header = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n" + b"X-Pad: " + b"x" * 1000 + b"\r\n\r\n"
            pieces = (header[i : i + 1] for i in range(len(header)))
            interval = 0.5
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                break
            ready, _, _ = select.select([sock], [], [], interval)
            if ready:
                try:
                    if not sock.recv(4096):
                        break
                except OSError:
                    break
        entry["closed"] = time.time()


class TarpitServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, robots_drip: bool = False):
        super().__init__(("127.0.0.1", 0), _Tarpit)
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.robots_drip = robots_drip
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _run_stage(workdir: Path, urls: list[str], threads: int, **settings) -> dict:
    uids = [make_uid("laion2b", url) for url in urls]
    pq.write_table(pa.table({"uid": uids, "source": ["laion2b"] * len(urls), "url": urls}), workdir / "urls.parquet")
    started = time.time()
    download_part(
        str(workdir / "urls.parquet"),
        str(workdir / "0000"),
        str(workdir / "0000.stats.json"),
        str(workdir / "0000.drops.parquet"),
        threads=threads,
        settings=download_settings(**settings),
    )
    finished = time.time()
    url_of = dict(zip(uids, urls))
    drops = {
        url_of[r["uid"]]: {"reason": r["reason"], "detail": r["detail"]}
        for r in pq.read_table(workdir / "0000.drops.parquet").to_pylist()
    }
    kept = {}
    status = {r["uid"]: r for r in read_status(workdir / "0000").to_pylist()}
    import tarfile

    for tar_path in sorted((workdir / "0000").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    key = member.name[: -len(".jpg")]
                    uid = next(u for u, r in status.items() if r["key"] == key)
                    kept[url_of[uid]] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    return {
        "drops": drops,
        "kept": kept,
        "stats": json.loads((workdir / "0000.stats.json").read_text()),
        "seconds": finished - started,
    }


def guard(workdir: Path) -> dict:
    internal = InternalServer()
    web = LoggingServer("127.0.0.1", robots="User-agent: *\nDisallow: /private/\n")
    secret = f"127.0.0.2:{internal.server_address[1]}"
    base = f"http://www.rs5m.test:{web.port}"

    def redirect(to: str) -> str:
        return f"{base}/redirect?to={quote(to, safe='')}"

    cases = {
        "redirect_internal_ip": redirect(f"http://{secret}/secret.jpg"),
        "redirect_decimal_ip": redirect(f"http://2130706434:{internal.server_address[1]}/secret.jpg"),
        "redirect_localhost": redirect(f"http://localhost:{web.port}/img/1.jpg"),
        "redirect_ftp": redirect(f"ftp://{secret}/secret.jpg"),
        "redirect_internal_name": redirect(f"http://secret.rs5m.test:{internal.server_address[1]}/secret.jpg"),
        "internal_name": f"http://secret.rs5m.test:{internal.server_address[1]}/secret.jpg",
        "drip": f"{base}/drip.jpg",
        "oversized": f"{base}/big.jpg",
        "oversized_stream": f"{base}/big-stream.jpg",
        "retry_after_then_success": f"{base}/once-429.jpg",
        "retry_after_too_long": f"{base}/long-429.jpg",
        "robots_disallowed": f"{base}/private/a.jpg",
        "plain": f"{base}/img/1.jpg",
        "direct_ip": f"http://127.0.0.1:{web.port}/img/2.jpg",
        "redirect_same_host": redirect("/img/3.jpg"),
    }
    result = _run_stage(
        workdir,
        list(cases.values()),
        threads=2,
        thread_count=4,
        timeout=5,
        retries=0,
        number_sample_per_shard=4,
        allowed_networks=["127.0.0.1/32"],
        max_bytes=MAX_BYTES,
        deadline=2,
        per_host_rate=1000,
        per_host_burst=10,
        robots_cache=str(workdir / "robots"),
        user_agent="rs5m-test/{version} (+{contact_url})",
        contact_url="https://example.org/contact",
    )
    result.update(
        cases=cases,
        image_sha256=hashlib.sha256(IMAGE).hexdigest(),
        web_log=web.log,
        internal_connections=internal.connections,
        secret=secret,
    )
    return result


def pacing(workdir: Path) -> dict:
    web = LoggingServer("127.0.0.1", robots="User-agent: *\nAllow: /\n")
    hosts = [f"h{i:02d}.rs5m.test" for i in range(20)]
    urls = [f"http://{host}:{web.port}/img/{n}.jpg" for host in hosts for n in range(8)]
    rate, burst = 2.0, 2.0
    result = _run_stage(
        workdir,
        urls,
        threads=2,
        thread_count=16,
        timeout=5,
        retries=0,
        number_sample_per_shard=40,
        allowed_networks=["127.0.0.1/32"],
        per_host_rate=rate,
        per_host_burst=burst,
        robots_cache=str(workdir / "robots"),
    )
    result.update(rate=rate, burst=burst, web_log=web.log)
    return result


class _RobotsHandler(BaseHTTPRequestHandler):
    """Serves `server.robots[host]` (status, body) at /robots.txt, an image elsewhere; `X-Robots-Tag`
    from the query's `xrt`."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        server = self.server
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        target = urlsplit(self.path)
        with server.lock:
            server.log.append({"time": time.time(), "host": host, "path": self.path})
            if target.path == "/robots.txt":
                plan = server.robots[host]
                status, body = plan.pop(0) if len(plan) > 1 else plan[0]
            else:
                status, body = 200, IMAGE
        self.send_response(status)
        for value in parse_qs(target.query).get("xrt", []):
            self.send_header("X-Robots-Tag", value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def robots(workdir: Path) -> dict:
    """robots.txt as RFC 9309 reads it, fetched by the guard itself (no img2dataset): per host, what
    each path gave (bytes, or the guard's reason / error class) and when the server was asked."""
    from rs5m.pub11 import crawl_guard
    from rs5m.pub11.crawl_guard import CrawlError, Guard

    crawl_guard.ROBOTS_UNREACHABLE_SECONDS = 1.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RobotsHandler)
    server.lock, server.log = threading.Lock(), []
    oversize = b"User-agent: *\nDisallow: /early\n" + b"#" * (500 * 1024) + b"\nDisallow: /late\n"
    server.robots = {
        "rfc.rs5m.test": [
            (
                200,
                b"User-agent: *\nDisallow: /*.gif$\nDisallow: /fish*.php\nAllow: /page\nDisallow: /*.html\n"
                b"Allow: /folder\nDisallow: /folder\n\nUser-agent: other\nDisallow: /\n\n"
                b"User-agent: *\nDisallow: /second-group\n",
            )
        ],
        "token.rs5m.test": [(200, b"User-agent: *\nDisallow: /\n\nUser-agent: rs5m\nDisallow: /mine\n")],
        "bom.rs5m.test": [(200, b"\xef\xbb\xbfUser-agent: *\nDisallow: /private\n")],
        "big.rs5m.test": [(200, oversize)],
        "gone.rs5m.test": [(404, b"User-agent: *\nDisallow: /\n")],
        "down.rs5m.test": [(503, b""), (200, b"User-agent: *\nDisallow: /private\n")],
        "slow.rs5m.test": [(200, b"User-agent: *\nCrawl-delay: 0.5\n")],
        "rate.rs5m.test": [(200, b"User-agent: rs5m\nRequest-rate: 2/1s\n")],
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    guard = Guard(
        guard_settings(
            pacing_dir=str(workdir / "pacing"),
            allowed_networks=["127.0.0.1/32"],
            deadline=3,
            timeout=3,
            per_host_rate=1000,
            per_host_burst=10,
            robots_cache=str(workdir / "robots"),
            user_agent="rs5m/0.1 (+https://example.org)",
        )
    )

    def get(host: str, path: str) -> str:
        try:
            guard.fetch_once(f"http://{host}:{port}{path}", None, ["noai"])
            return "fetched"
        except CrawlError as error:
            return error.reason
        except Exception as error:  # noqa: BLE001 - the class tells what failed
            return type(error).__name__

    paths = {
        "rfc.rs5m.test": [
            "/a.gif",
            "/a.gif?x=1",
            "/a.GIF",
            "/fish.php",
            "/fishheads/catfish.php?p=1",
            "/Fish.PHP",
            "/page",
            "/page.html",
            "/folder/x",
            "/second-group/x",
            "/other",
        ],
        "token.rs5m.test": ["/mine/x", "/yours"],
        "bom.rs5m.test": ["/private/x", "/public"],
        "big.rs5m.test": ["/early/x", "/late/x"],
        "gone.rs5m.test": ["/x"],
        "down.rs5m.test": ["/private/x"],
    }
    outcome = {host: {path: get(host, path) for path in items} for host, items in paths.items()}
    time.sleep(1.2)  # past ROBOTS_UNREACHABLE_SECONDS: asked again
    outcome["down.rs5m.test"]["/private/x again"] = get("down.rs5m.test", "/private/x")
    outcome["down.rs5m.test"]["/public again"] = get("down.rs5m.test", "/public")
    outcome["xrt"] = {
        "scoped": get("gone.rs5m.test", "/img?xrt=rs5m:+noai"),
        "other": get("gone.rs5m.test", "/img?xrt=otherbot:+noai"),
        "all": get("gone.rs5m.test", "/img?xrt=noai"),
    }
    for host in ("slow.rs5m.test", "rate.rs5m.test"):
        outcome[host] = [get(host, f"/img/{i}") for i in range(4)]
    ipv6 = {
        "origin": crawl_guard.origin_of("http://[::1]:8080/a"),
        "origin_default": crawl_guard.origin_of("https://[2001:DB8::1]/a"),
    }
    # a server whose status line reads like a guard reason
    spoof = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Spoof)
    spoof.daemon_threads = True
    threading.Thread(target=spoof.serve_forever, daemon=True).start()
    crawl_guard._GUARD = guard
    spoofed = {}
    for line in ("blocked_address: spoofed", "robots_disallowed: x", "HTTP/1.1 404 blocked_redirect: x"):
        spoof.status_line = line.encode()
        url = f"http://127.0.0.1:{spoof.server_address[1]}/robots-free.jpg"
        _, _, message = crawl_guard.download_image_with_retry((0, url), 3, 0, None, [])
        spoofed[line] = [message, list(failure_reason("failed_to_download", message))]
    return {"outcome": outcome, "log": server.log, "ipv6": ipv6, "spoofed": spoofed}


class _Spoof(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(self.server.status_line + b"\r\nContent-Length: 0\r\n\r\n")


def backstop(workdir: Path) -> dict:
    """The socket backstop of a worker: every way to connect or send to a blocked address is refused."""
    import _socket

    from rs5m.pub11.crawl_guard import BlockedConnection, Guard, install_socket_guard

    internal = InternalServer()
    target = ("127.0.0.2", internal.server_address[1])
    install_socket_guard(Guard(guard_settings(allowed_networks=["127.0.0.1/32"])))
    attempts = {
        "connect": lambda: socket.socket().connect(target),
        "connect_ex": lambda: socket.socket().connect_ex(target),
        "create_connection": lambda: socket.create_connection(target, timeout=2),
        "raw_socket_connect": lambda: _socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(target),
        "sendto_fastopen": lambda: socket.socket().sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, target),
        "sendmsg_fastopen": lambda: socket.socket().sendmsg([b"GET /\r\n\r\n"], [], socket.MSG_FASTOPEN, target),
        "udp_sendto": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", target),
        "name": lambda: socket.socket().connect(("secret.rs5m.test", target[1])),
    }
    outcome = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            outcome[name] = "passed"
        except BlockedConnection:
            outcome[name] = "blocked"
        except OSError as error:
            outcome[name] = f"{type(error).__name__}: {error}"
    time.sleep(0.2)
    return {"outcome": outcome, "internal_connections": internal.connections}


def redirect_pacing(workdir: Path) -> dict:
    """Four parts (each its own guard and part schedule, the stage-wide schedules shared), each with
    a host of its own whose URLs redirect to one host, and URLs to one address in three IPv6
    spellings: what the server saw, per Host header."""
    from concurrent.futures import ThreadPoolExecutor

    from rs5m.pub11.crawl_guard import Guard

    web = LoggingServer("127.0.0.1")
    port = web.port
    rate, burst, parts = 4.0, 2.0, 4
    spellings = ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:1]"]
    guards, urls = [], []
    for part in range(parts):
        settings = guard_settings(
            pacing_dir=str(workdir / f"part{part}"),
            allowed_networks=["127.0.0.1/32"],
            per_host_rate=rate,
            per_host_burst=burst,
            parts=parts,
            parts_per_host=1,
            robots_txt=False,
            host_schedule=str(workdir / "host_schedule"),
            deadline=30,
        )
        guards.append(Guard(settings))
        target = f"http://t.rs5m.test:{port}/img/{part}-{{n}}.jpg"
        urls.append(
            [f"http://a{part}.rs5m.test:{port}/redirect?to={quote(target.format(n=n), safe='')}" for n in range(3)]
            + [f"http://{spelling}:{port}/img/v6-{part}-{n}.jpg" for n, spelling in enumerate(spellings)]
        )

    def run_part(part: int) -> list[str]:
        def one(url: str) -> str:
            try:
                guards[part].fetch_once(url)
                return "fetched"
            except Exception as error:  # noqa: BLE001 - the class tells what failed
                return f"{type(error).__name__}: {error}"

        with ThreadPoolExecutor(3) as pool:
            return list(pool.map(one, urls[part]))

    with ThreadPoolExecutor(parts) as pool:
        outcome = list(pool.map(run_part, range(parts)))
    return {"outcome": outcome, "log": web.log, "rate": rate, "burst": burst}


class _LatencyHandler(BaseHTTPRequestHandler):
    """Answers after the latency of the Host header's host (`server.hosts[host]`: latency, robots.txt
    body, whether images are refused with 429); logs when each request arrived."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        server = self.server
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        with server.lock:
            server.log.append({"time": time.time(), "host": host, "path": self.path, "mode": server.mode})
        latency, robots_body, refuses = server.hosts[host]
        time.sleep(latency)
        if self.path == "/robots.txt":
            status, body = 200, robots_body.encode()
        elif refuses:
            status, body = 429, b"slow down\n"
        else:
            status, body = 200, IMAGE
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


POLITENESS_HOSTS = {  # host: (latency s, robots.txt, answers 429), URLs
    "fast.rs5m.test": ((0.002, "User-agent: *\nAllow: /\n", False), 50),
    "medium.rs5m.test": ((0.05, "User-agent: *\nCrawl-delay: 0.4\n", False), 12),
    "slow.rs5m.test": ((0.2, "User-agent: *\nAllow: /\n", False), 10),
    "busy.rs5m.test": ((0.002, "User-agent: *\nAllow: /\n", True), 6),
}


def politeness(workdir: Path) -> dict:
    """The same URLs of four hosts (fast, medium with a robots.txt Crawl-delay, slow, one answering
    429) fetched by two guards of one part ("processes", sharing the part's pacing folder) with ten
    threads each, once at the fixed rate and once adaptive: when the server saw each request."""
    from concurrent.futures import ThreadPoolExecutor

    from rs5m.pub11.crawl_guard import Guard
    from rs5m.pub11.crawl_pacing import spread_order

    server = ThreadingHTTPServer(("127.0.0.1", 0), _LatencyHandler)
    server.daemon_threads = True
    server.lock, server.log = threading.Lock(), []
    server.hosts = {host: plan for host, (plan, _) in POLITENESS_HOSTS.items()}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    urls = [f"http://{host}:{port}/img/{n}.jpg" for host, (_, count) in POLITENESS_HOSTS.items() for n in range(count)]
    order = spread_order([urlsplit(u).hostname for u in urls], urls)
    urls = [urls[i] for i in order]
    bounds = dict(per_host_rate=4.0, per_host_burst=1.0, min_rate=0.25, per_host_rate_max=10.0, delay_factor=5.0)
    spans = {}
    for mode in ("fixed", "adaptive"):
        server.mode = mode
        guards = [
            Guard(
                guard_settings(
                    pacing_dir=str(workdir / mode / "pacing"),
                    allowed_networks=["127.0.0.1/32"],
                    politeness=mode,
                    robots_cache=str(workdir / mode / "robots"),
                    deadline=10,
                    timeout=10,
                    **bounds,
                )
            )
            for _ in range(2)
        ]

        def one(index: int, guards=guards) -> str:
            try:
                guards[index % 2].fetch(urls[index])
                return "fetched"
            except Exception as error:  # noqa: BLE001 - the class tells what failed
                return type(error).__name__

        started = time.time()
        with ThreadPoolExecutor(20) as pool:
            outcome = list(pool.map(one, range(len(urls))))
        spans[mode] = {"started": started, "seconds": time.time() - started, "outcome": outcome}
        if mode == "adaptive":  # the paces the part's processes agreed on, from its pacing folder
            spans[mode]["delays"] = {h.split(".")[0]: guards[0].pacer.pace(h).delay for h in POLITENESS_HOSTS}
    return {"log": server.log, "urls": urls, "runs": spans, "bounds": bounds}


def tarpit(workdir: Path) -> dict:
    """Servers that hold a connection open with a trickle of bytes; deadline 2 s, per-operation timeout 5 s."""
    pit = TarpitServer()
    robots_pit = TarpitServer(robots_drip=True)
    base = f"http://www.rs5m.test:{pit.server_address[1]}"
    cases = {
        "continue_flood": f"{base}/continue.jpg",
        "endless_trailers": f"{base}/trailers.jpg",
        "header_drip": f"{base}/drip.jpg",
        "robots_drip": f"http://www.rs5m.test:{robots_pit.server_address[1]}/img.jpg",
    }
    deadline = 2.0
    result = _run_stage(
        workdir,
        list(cases.values()),
        threads=1,
        thread_count=4,
        timeout=5,
        retries=0,
        number_sample_per_shard=10,
        allowed_networks=["127.0.0.1/32"],
        deadline=deadline,
        per_host_rate=1000,
        per_host_burst=10,
        robots_cache=str(workdir / "robots"),
    )
    time.sleep(0.5)  # let the servers notice the last closes
    result.update(cases=cases, deadline=deadline, pit_log=pit.log, robots_pit_log=robots_pit.log)
    return result


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    assert socket.gethostbyname("www.rs5m.test").startswith("127."), "not in the sealed namespace"
    folder.mkdir(parents=True, exist_ok=True)
    scenarios = {
        "guard": guard,
        "pacing": pacing,
        "tarpit": tarpit,
        "robots": robots,
        "backstop": backstop,
        "redirect_pacing": redirect_pacing,
        "politeness": politeness,
    }
    output = scenarios[scenario](folder)
    (folder / "result.json").write_text(json.dumps(output, indent=1))
