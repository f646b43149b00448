"""Download stage, crawl guard: how each image is fetched inside img2dataset's workers.

img2dataset keeps its shards, threads, resizing and status tables; the guard replaces its
`download_image_with_retry` in every worker process (`GuardedDownloader`, which img2dataset pickles
into each spawned worker, installs it before the first shard) with `fetch`, which:

- resolves the name once (a DNS cache per process), drops resolved addresses that fail
  `rs5m.pub11.urls.address_blocked` and connects the socket to one of the addresses it checked, so a
  resolver that answers differently later (DNS rebinding) has no window; a name with only blocked
  addresses ends as `blocked_address`;
- follows only http/https redirects, at most `max_redirects` hops, each hop checked with the URL
  rules and, when resolved, the address rules: a failing hop ends as `blocked_redirect` (detail: the
  hop's URL);
- reads at most `max_bytes` (`download_too_large`) within `deadline` seconds of wall-clock time for
  the whole attempt (`download_timeout`): connect, TLS, status line, headers, 1xx responses, body,
  chunk trailers, every redirect hop and the robots.txt fetch it triggers. A watchdog thread
  (`WATCHDOG`) shuts each socket down when its attempt's deadline passes, so no server can stretch
  it by trickling bytes; 1xx responses (`MAX_INFORMATIONAL`) and trailer lines
  (`MAX_TRAILER_LINES`) are bounded too; the per-operation `timeout` still applies within;
- paces every host (`rs5m.pub11.crawl_pacing.HostPacer`, or `AdaptivePacer` with `politeness:
  adaptive`, which each request's fetch time and outcome feed: `outcome_of`), records the fetch
  times per host (`HostTimes`), asks robots.txt once per origin per run (cached
  in `robots_cache`, shared by parts and retries; `robots_disallowed`) and honours X-Robots-Tag;
- waits for 429/503 `Retry-After` up to `max_retry_wait` (longer: `rate_limited`), retries other
  transient failures `retries` times with exponential backoff and jitter, and a 429 that outlasts
  them ends as `rate_limited`;
- sends `user_agent`.

As a backstop, `install_socket_guard` wraps `socket.socket.connect` in the worker: any other
connection (any scheme, any library) to a blocked address fails with `blocked_address`. With a
configured proxy, connections go to the proxy (its address is allowed) and the proxy resolves names:
then only the URL rules are checked here, and address rules are the proxy's (and the firewall's) job.

Failures are returned as img2dataset error messages `"<reason>: <detail>"`; `rs5m.pub11.download_part` turns them
into ledger reasons (`reason_of`).

Size: the fetch of one image with every check (addresses, redirects, bounds, robots.txt,
Retry-After) is one path through urllib; the pacing lives in rs5m.pub11.crawl_pacing.
"""

from __future__ import annotations

import _socket
import email.utils
import hashlib
import heapq
import http.client
import io
import ipaddress
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from protego import Protego

from rs5m.pub11.crawl_pacing import (
    ANSWERED,
    BACK_OFF,
    BACK_OFF_STATUSES,
    FAILED,
    AdaptiveBounds,
    AdaptivePacer,
    HostPacer,
    HostTimes,
)
from rs5m.pub11.urls import (
    address_blocked,
    allowed_networks,
    check_url,
    url_host,
)

log = logging.getLogger(__name__)

# Ledger reasons of the download stage that the guard produces (rs5m.pub11.download_part adds the others).
BLOCKED_ADDRESS = "blocked_address"
BLOCKED_REDIRECT = "blocked_redirect"
TOO_LARGE = "download_too_large"
TIMEOUT = "download_timeout"
RATE_LIMITED = "rate_limited"
ROBOTS = "robots_disallowed"
REASONS = (BLOCKED_ADDRESS, BLOCKED_REDIRECT, TOO_LARGE, TIMEOUT, RATE_LIMITED, ROBOTS)
# Reasons a later attempt cannot change: `retry_failed_downloads` does not retry them.
PERMANENT = (BLOCKED_ADDRESS, BLOCKED_REDIRECT, TOO_LARGE, ROBOTS)

REDIRECTS = (301, 302, 303, 307, 308)
TRANSIENT = (429, 500, 502, 503, 504)
RETRY_AFTER_WAITS = 3  # Retry-After waits per URL, besides `retries`
ROBOTS_PARSE_BYTES = 500 * 1024  # RFC 9309: parse at least 500 KiB (the rest is not read)
ROBOTS_MAX_AGE = 24 * 3600  # RFC 9309: a cached robots.txt should not be used for more than 24 h
ROBOTS_UNREACHABLE_SECONDS = 300.0  # an unreachable robots.txt disallows its origin this long, then is asked again
ROBOTS_CACHE_ENTRIES = 4096  # parsed robots.txt kept per process
DNS_TTL = 300.0
DNS_CACHE_ENTRIES = 65536  # names kept per process
READ_SIZE = 1 << 16
MAX_INFORMATIONAL = 8  # 1xx responses before the final one
MAX_TRAILER_LINES = 64  # trailer lines after a chunked body


@dataclass
class CrawlSettings:
    """What the guard needs in a worker, built by `rs5m.pub11.download_part.crawl_settings` from the
    stage's settings (config sections `download` and `urls`); no defaults of its own."""

    allowed_networks: list
    blocked_suffixes: list
    max_length: int
    max_redirects: int
    max_bytes: int
    deadline: float
    timeout: float
    retries: int
    retry_backoff: float
    max_retry_wait: float
    rate: float  # this part's share of per_host_rate (rs5m.pub11.crawl_pacing.part_rate)
    host_share: float  # that share as a fraction (1 / parts a host's URLs go to)
    burst: float
    pacing_dir: str | None
    stage_pacing_dir: str | None  # the stage-wide schedules (all parts), at stage_rate / stage_burst
    stage_rate: float  # per_host_rate, or per_host_rate_max when the politeness is adaptive
    stage_burst: float
    robots_txt: bool
    robots_cache: str | None
    user_agent: str
    proxy: str | None
    politeness: str  # fixed | adaptive (rs5m.pub11.crawl_pacing.AdaptivePacer)
    min_rate: float
    per_host_rate_max: float
    per_host_rate: float
    delay_factor: float
    timing_dir: str | None  # fetch times per host (rs5m.pub11.crawl_pacing.HostTimes); None: not kept

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def robots_token(self) -> str:
        """The product token robots.txt groups are matched against ("rs5m" of "rs5m/0.1.0 (...)")."""
        return self.user_agent.split("/")[0].split()[0].lower() if self.user_agent.strip() else "*"


class CrawlError(Exception):
    """A failure with a ledger reason of its own; str() is "<reason>: <detail>"."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class BlockedConnection(ConnectionRefusedError):
    """A connection the socket backstop refused (ledger reason blocked_address)."""

    reason = BLOCKED_ADDRESS


class _Status(Exception):
    """A final HTTP status (message as urllib's HTTPError)."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None):
        super().__init__(f"HTTP Error {status}: {reason}")
        self.status, self.retry_after = status, retry_after


def reason_of(message: str | None) -> tuple[str, str] | None:
    """(reason, detail) of a guard error message, None for other messages."""
    if message:
        reason, sep, detail = message.partition(": ")
        if sep and reason in REASONS:
            return reason, detail
    return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):  # ASCII digits only ("²".isdigit() is True)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Dns:
    """A per-process cache of name -> addresses (also of failures), TTL DNS_TTL, at most
    DNS_CACHE_ENTRIES names (the least recently resolved go first)."""

    def __init__(self, resolve):
        self._resolve = resolve
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], tuple[float, list[str] | OSError]] = OrderedDict()

    def addresses(self, host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((host, port))
        if hit is None or hit[0] < now:
            try:
                infos = self._resolve(host, port, 0, socket.SOCK_STREAM)
                result: list[str] | OSError = list(dict.fromkeys(info[4][0] for info in infos))
            except OSError as error:  # gaierror: cached too, so a dead name costs one lookup
                result = error
            hit = (now + DNS_TTL, result)
            with self._lock:
                self._cache[(host, port)] = hit
                self._cache.move_to_end((host, port))
                while len(self._cache) > DNS_CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        if isinstance(hit[1], OSError):
            raise hit[1]
        return hit[1]


_ORIGINAL_GETADDRINFO = socket.getaddrinfo
_ORIGINAL_CONNECT = socket.socket.connect
_ORIGINAL_CONNECT_EX = socket.socket.connect_ex
_ORIGINAL_SENDTO = socket.socket.sendto
_ORIGINAL_SENDMSG = socket.socket.sendmsg
_ORIGINAL_RAW_SOCKET = _socket.socket


class Guard:
    """The fetcher of one worker process (its DNS cache, pacer and robots.txt memory)."""

    def __init__(self, settings: CrawlSettings):
        self.settings = settings
        self.networks = allowed_networks(settings.allowed_networks)
        self.dns = _Dns(_ORIGINAL_GETADDRINFO)
        self.pacer: HostPacer | AdaptivePacer | None = None
        if settings.pacing_dir and settings.politeness == "adaptive":
            bounds = AdaptiveBounds(
                settings.min_rate, settings.per_host_rate_max, settings.per_host_rate, settings.delay_factor
            )
            self.pacer = AdaptivePacer(settings.pacing_dir, bounds, settings.host_share, settings.burst)
        elif settings.pacing_dir:
            self.pacer = HostPacer(settings.pacing_dir, settings.rate, settings.burst)
        self.stage_pacer = (
            HostPacer(settings.stage_pacing_dir, settings.stage_rate, settings.stage_burst)
            if settings.stage_pacing_dir
            else None
        )
        self.times = HostTimes(settings.timing_dir) if settings.timing_dir else None
        self.proxy = None
        self.proxy_addresses: frozenset[str] = frozenset()
        if settings.proxy:
            parts = urlsplit(settings.proxy if "//" in settings.proxy else "http://" + settings.proxy)
            self.proxy = (parts.hostname, parts.port or 80)
            self.proxy_addresses = frozenset(info[4][0] for info in _ORIGINAL_GETADDRINFO(*self.proxy))
        self.robots = _Robots(self)

    # -- the rules -------------------------------------------------------------------------
    def connect_allowed(self, address: str) -> bool:
        return address in self.proxy_addresses or not address_blocked(address, self.networks)

    def url_refused(self, url: str) -> str | None:
        return check_url(url, self.networks, self.settings.blocked_suffixes, self.settings.max_length)

    # -- one image -------------------------------------------------------------------------
    def fetch(self, url: str, user_agent_token: str | None = None, directives=None) -> bytes:
        """The body of `url`, or an exception (CrawlError for the guard's own reasons)."""
        settings = self.settings
        attempt = waits = 0
        while True:
            try:
                return self.fetch_once(url, user_agent_token, directives)
            except _Status as error:
                if error.status in (429, 503) and error.retry_after is not None:
                    if error.retry_after > settings.max_retry_wait:
                        raise CrawlError(
                            RATE_LIMITED,
                            f"{error}; Retry-After {error.retry_after:g} s > "
                            f"max_retry_wait {settings.max_retry_wait:g} s",
                        ) from None
                    if waits >= RETRY_AFTER_WAITS:
                        raise CrawlError(RATE_LIMITED, f"{error} after {waits} Retry-After waits") from None
                    waits += 1
                    time.sleep(error.retry_after)
                    continue
                if error.status not in TRANSIENT or attempt >= settings.retries:
                    if error.status == 429:
                        raise CrawlError(RATE_LIMITED, str(error)) from None
                    raise
            except CrawlError:
                raise
            except OSError:
                if attempt >= settings.retries:
                    raise
            # exponential backoff with jitter (half to full of base * 2^attempt, capped)
            delay = min(settings.max_retry_wait, settings.retry_backoff * 2**attempt)
            time.sleep(delay * random.uniform(0.5, 1.0))
            attempt += 1

    def fetch_once(
        self,
        url: str,
        user_agent_token=None,
        directives=None,
        max_bytes: int | None = None,
        robots: bool = True,
        deadline_at: float | None = None,
        truncate: bool = False,
    ) -> bytes:
        """One attempt: the redirect chain, within the deadline, checked at every hop.

        `deadline_at` (time.monotonic()): the attempt's deadline when this fetch is part of one (the
        robots.txt fetch of a hop); else `deadline` seconds from now. `truncate`: a body longer than
        `max_bytes` is cut there (robots.txt) instead of failing as `download_too_large`.
        """
        settings = self.settings
        if deadline_at is None:
            deadline_at = time.monotonic() + settings.deadline
        current = url.strip()
        for hop in range(settings.max_redirects + 1):
            if self.url_refused(current):
                if hop:
                    raise CrawlError(BLOCKED_REDIRECT, current)
                raise CrawlError(BLOCKED_ADDRESS, f"{current} (refused by the URL rules)")
            host_rate = None
            if robots and settings.robots_txt:
                allowed, host_rate = self.robots.verdict(current, deadline_at)
                if not allowed:
                    raise CrawlError(ROBOTS, f"robots.txt disallows {current} for {settings.robots_token}")
            status, reason, headers, body = self._request(
                current,
                hop,
                deadline_at,
                user_agent_token,
                directives,
                settings.max_bytes if max_bytes is None else max_bytes,
                truncate,
                host_rate,
            )
            if status in REDIRECTS:
                location = headers.get("Location")
                if not location:
                    raise _Status(status, f"{reason} (redirect without Location)")
                target = urljoin(current, location.strip())
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise CrawlError(BLOCKED_REDIRECT, target)
                current = target
                continue
            if 200 <= status < 300:
                return body
            raise _Status(status, reason, retry_after_seconds(headers.get("Retry-After")))
        raise _Status(status, f"{reason}: too many redirects (more than {settings.max_redirects})")

    def _request(self, url, hop, deadline_at, user_agent_token, directives, max_bytes, truncate, host_rate):
        """(status, reason, headers, body); body only for 2xx. `host_rate`: the host's robots.txt
        Crawl-delay / Request-rate in requests per second (None: none), which may only lower its pace.

        Paced first; its fetch time and outcome then go to the adaptive pace and the host's times."""
        host = url_host(url)
        self._pace(host, host_rate, deadline_at)
        started = time.monotonic()
        try:
            answer = self._send(url, host, hop, deadline_at, user_agent_token, directives, max_bytes, truncate)
        except Exception as error:
            if started < deadline_at:  # else its turn came after the deadline: nothing was sent
                self._observe(host, time.monotonic() - started, outcome_of(None, error))
            raise
        self._observe(host, time.monotonic() - started, outcome_of(answer[0], None))
        return answer

    def _observe(self, host: str, seconds: float, outcome: tuple[str, bool] | None) -> None:
        """Record one request to `host`: (controller outcome, error) or None (no request was sent)."""
        if outcome is None:
            return
        if isinstance(self.pacer, AdaptivePacer):
            self.pacer.observe(host, outcome[0], seconds)
        if self.times is not None:
            self.times.record(host, seconds, outcome[1])

    def flush_times(self) -> None:
        if self.times is not None:
            self.times.flush()

    def _send(self, url, host, hop, deadline_at, user_agent_token, directives, max_bytes, truncate):
        """One request through the proxy or to the checked addresses of `host` (see `_request`)."""
        settings = self.settings
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)

        def timed_out() -> CrawlError:
            return CrawlError(TIMEOUT, f"{url}: no complete answer within deadline {settings.deadline:g} s")

        def remaining() -> float:
            left = deadline_at - time.monotonic()
            if left <= 0:
                raise timed_out()
            return min(settings.timeout, left)

        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        watched: list[int] = []  # watchdog tokens of this request's sockets
        if self.proxy:
            if scheme == "https":
                conn = http.client.HTTPSConnection(self.proxy[0], self.proxy[1], timeout=remaining())
                conn.set_tunnel(host, port)
            else:
                conn = http.client.HTTPConnection(self.proxy[0], self.proxy[1], timeout=remaining())
                target = url.split("#", 1)[0]
            conn._create_connection = _watched([self.proxy[0]], deadline_at, remaining, watched)
        else:
            try:
                resolved = self.dns.addresses(host, port)
            except OSError as error:
                raise OSError(f"<urlopen error {error}>") from None
            usable = [a for a in resolved if not address_blocked(a, self.networks)]
            if not usable:
                if hop:
                    raise CrawlError(BLOCKED_REDIRECT, url)
                raise CrawlError(BLOCKED_ADDRESS, f"{host} resolves only to blocked addresses ({', '.join(resolved)})")
            conn = connection_class(host, port, timeout=remaining())
            # connect to the checked addresses, never re-resolve
            conn._create_connection = _watched(usable, deadline_at, remaining, watched)
        conn.response_class = _Response
        try:
            answer = self._exchange(
                conn, url, target, deadline_at, remaining, user_agent_token, directives, max_bytes, truncate
            )
            if time.monotonic() >= deadline_at:  # an end of file from the watchdog is no complete answer
                raise timed_out()
            return answer
        except CrawlError:
            raise
        except (OSError, http.client.HTTPException) as error:
            if time.monotonic() >= deadline_at:  # the watchdog shut the socket down (or about to)
                raise timed_out() from None
            if isinstance(error, socket.timeout):
                raise OSError("<urlopen error timed out>") from None
            raise
        finally:
            for token in watched:
                WATCHDOG.release(token)
            conn.close()

    def _pace(self, host: str, host_rate: float | None, deadline_at: float) -> None:
        """Wait for this request's slot: in the part's schedule of the host (its share of the rate,
        or of its adaptive pace), then in the stage-wide one (the whole rate; not before the first slot).

        Adaptive: a request whose turn would come after its attempt's deadline is not sent and
        ends as `rate_limited` at once (the thread is free for other hosts; a retry asks again)."""
        settings = self.settings
        slot = 0.0
        lower = host_rate is not None and host_rate < settings.stage_rate
        if isinstance(self.pacer, AdaptivePacer):
            give_up_at = time.time() + (deadline_at - time.monotonic())
            slot = self.pacer.claim(host, host_rate, give_up_at)  # waits until the host's pace lets it go
            if slot is None:
                pace = self.pacer.pace(host)
                raise CrawlError(
                    RATE_LIMITED,
                    f"{host} is paced at one request per {pace.delay:.3g} s (adaptive); "
                    "its turn comes after this attempt's deadline",
                )
        elif self.pacer is not None:
            if host_rate is not None and host_rate * settings.host_share < self.pacer.rate:
                slot = self.pacer.reserve(host, host_rate * settings.host_share, 1.0)
            else:
                slot = self.pacer.reserve(host)
        if self.stage_pacer is not None:
            slot = self.stage_pacer.reserve(host, host_rate if lower else None, 1.0 if lower else None, slot)
        _sleep_until(slot)

    def _exchange(self, conn, url, target, deadline_at, remaining, user_agent_token, directives, max_bytes, truncate):
        """Send the request and read the answer: (status, reason, headers, body); body only for 2xx."""
        settings = self.settings
        conn.connect()
        sock = conn.sock
        sock.settimeout(remaining())
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.putheader("User-Agent", settings.user_agent)
        conn.putheader("Accept", "image/*,*/*;q=0.8")
        conn.endheaders()
        sock.settimeout(remaining())
        response = conn.getresponse()
        headers = response.msg
        status = response.status
        if not 200 <= status < 300:
            return status, response.reason, headers, b""
        token = (user_agent_token or settings.robots_token).lower()
        if directives and _x_robots_disallowed(headers, token, directives):
            raise CrawlError(ROBOTS, "Use of image disallowed by X-Robots-Tag directive")
        length = headers.get("Content-Length")
        if not truncate and length and length.strip().isdigit() and int(length) > max_bytes:
            raise CrawlError(TOO_LARGE, f"{url}: Content-Length {int(length)} > max_bytes {max_bytes}")
        chunks, total = [], 0
        while True:
            sock.settimeout(remaining())
            chunk = response.read1(READ_SIZE)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes and truncate:
                chunks.append(chunk[: len(chunk) - (total - max_bytes)])
                break
            if total > max_bytes:
                raise CrawlError(TOO_LARGE, f"{url}: more than max_bytes {max_bytes} bytes")
            chunks.append(chunk)
        return status, response.reason, headers, b"".join(chunks)


def outcome_of(status: int | None, error: BaseException | None) -> tuple[str, bool] | None:
    """(what the adaptive pace makes of a request, whether it counts as a host error) for a final
    HTTP status or an error; None when no request reached the host (a blocked address or hop)."""
    if error is None:
        return (BACK_OFF if status in BACK_OFF_STATUSES else ANSWERED), not 200 <= status < 400
    if isinstance(error, CrawlError):
        if error.reason in (BLOCKED_ADDRESS, BLOCKED_REDIRECT):
            return None
        if error.reason == TIMEOUT:
            return BACK_OFF, True
        return ANSWERED, False  # too large, X-Robots-Tag: the host answered, our rules refused
    if isinstance(error, BlockedConnection):
        return None
    if isinstance(error, socket.timeout) or "timed out" in str(error):
        return BACK_OFF, True
    return FAILED, True


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def _watched(addresses: list[str], deadline_at: float, remaining, watched: list[int]):
    """A create_connection for http.client that connects to `addresses` in turn (the checked ones:
    never re-resolved), all within the one deadline, each socket watched by WATCHDOG from before its
    connect() until the request releases it (TLS wraps the same file descriptor)."""

    def create_connection(address, timeout=None, source_address=None):
        error: OSError | None = None
        for candidate in addresses:
            infos = _ORIGINAL_GETADDRINFO(candidate, address[1], 0, socket.SOCK_STREAM)
            family, kind, proto, _, sockaddr = infos[0]
            sock = socket.socket(family, kind, proto)
            token = WATCHDOG.watch(sock, deadline_at)
            watched.append(token)
            try:
                sock.settimeout(remaining())
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                WATCHDOG.release(token)
                sock.close()
                error = exc
                if isinstance(exc, CrawlError) or time.monotonic() >= deadline_at:
                    raise
        raise error if error is not None else OSError("no address")

    return create_connection


class _Response(http.client.HTTPResponse):
    """http.client's response with a bound on 1xx responses and on trailer lines (each of which
    would otherwise restart the per-operation timeout for ever)."""

    _informational = 0

    def _read_status(self):
        version, status, reason = super()._read_status()
        if 100 <= status < 200:
            self._informational += 1
            if self._informational > MAX_INFORMATIONAL:
                raise http.client.HTTPException(f"more than {MAX_INFORMATIONAL} 1xx responses")
        return version, status, reason

    def _read_and_discard_trailer(self):
        for _ in range(MAX_TRAILER_LINES + 1):  # and the blank line
            line = self.fp.readline(http.client._MAXLINE + 1)
            if len(line) > http.client._MAXLINE:
                raise http.client.LineTooLong("trailer line")
            if line in (b"\r\n", b"\n", b""):
                return
        raise http.client.HTTPException(f"more than {MAX_TRAILER_LINES} trailer lines")


class _Watchdog:
    """Shuts down every socket whose attempt's deadline has passed (one thread per process), so a
    server that trickles bytes (1xx responses, headers, trailers, body) cannot hold a worker: the
    blocked read returns at once and the request ends as `download_timeout`."""

    def __init__(self):
        self._lock = threading.Condition()
        self._fds: dict[int, int] = {}  # token -> file descriptor, while watched
        self._heap: list[tuple[float, int]] = []
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline_at: float) -> int:
        with self._lock:
            token = next(self._tokens)
            self._fds[token] = sock.fileno()
            heapq.heappush(self._heap, (deadline_at, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="crawl-deadline", daemon=True)
                self._thread.start()
            self._lock.notify()
        return token

    def release(self, token: int) -> None:
        """Stop watching (before the socket is closed, so its descriptor is never reused meanwhile)."""
        with self._lock:
            self._fds.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._fds:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline_at, token = self._heap[0]
                wait = deadline_at - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
                _shutdown(self._fds.pop(token))


def _shutdown(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


WATCHDOG = _Watchdog()


def _x_robots_disallowed(headers, token: str, directives) -> bool:
    """img2dataset's `is_disallowed`: an X-Robots-Tag value "[<token>:] d1, d2" with a directive of
    `directives`, unscoped or scoped to `token` (lower case)."""
    for value in headers.get_all("X-Robots-Tag", []):
        scoped = value.split(":", 1)
        scope = scoped[0].lower() if len(scoped) == 2 else None
        if (scope is None or scope == token) and any(d.strip().lower() in directives for d in scoped[-1].split(",")):
            return True
    return False


def origin_of(url: str) -> str:
    """scheme://host:port of a URL (IPv6 hosts in brackets), the key of its robots.txt."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = url_host(url)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{parts.port or (443 if scheme == 'https' else 80)}"


def parse_robots(body: bytes) -> Protego:
    """RFC 9309 rules of a robots.txt: its first ROBOTS_PARSE_BYTES bytes, UTF-8 (a BOM skipped)."""
    text = body[:ROBOTS_PARSE_BYTES].decode("utf-8-sig", errors="replace")
    return Protego.parse(text)


def robots_rate(parser: Protego, token: str) -> float | None:
    """Requests per second that robots.txt's Crawl-delay / Request-rate allow `token` (the lower), or None."""
    rates = []
    delay = parser.crawl_delay(token)
    if delay is not None:
        rates.append(1.0 / delay if delay > 0 else float("inf"))
    rate = parser.request_rate(token)
    if rate is not None:
        rates.append(rate.requests / rate.seconds)
    return min(rates) if rates else None


class _Robots:
    """robots.txt of each origin (RFC 9309, parsed by protego), fetched once per run: a file per
    origin in `robots_cache` (written under a lock, so parts, processes and retries share one
    fetch), and the parsed rules in a bounded in-memory cache (ROBOTS_CACHE_ENTRIES, ROBOTS_MAX_AGE).

    2xx: its rules (the first 500 KiB); 4xx, a redirect out of bounds or a refused address: no
    rules (RFC 9309 "unavailable": all allowed); 5xx, 429 or no answer: "unreachable", everything
    disallowed for ROBOTS_UNREACHABLE_SECONDS (kept in this process only: the images fail as
    download_failed, so a later retry asks again), then asked again.
    """

    def __init__(self, guard: Guard):
        self.guard = guard
        self.folder = Path(guard.settings.robots_cache) if guard.settings.robots_cache else None
        self._lock = threading.Lock()
        self._parsers: OrderedDict[str, tuple[float, Protego | str]] = OrderedDict()
        self._origin_locks = [threading.Lock() for _ in range(64)]

    def verdict(self, url: str, deadline_at: float) -> tuple[bool, float | None]:
        """(allowed, the origin's requests per second by Crawl-delay / Request-rate or None)."""
        origin = origin_of(url)
        # waiting for another thread's fetch of this origin counts against this attempt's deadline too
        origin_lock = self._origin_locks[hash(origin) % len(self._origin_locks)]
        if not origin_lock.acquire(timeout=max(0.0, deadline_at - time.monotonic())):
            raise CrawlError(TIMEOUT, f"{url}: robots.txt of {origin} not read within the deadline")
        try:
            with self._lock:
                hit = self._parsers.get(origin)
            if hit is None or hit[0] < time.monotonic():
                parser = self._load(origin, deadline_at)
                ttl = ROBOTS_UNREACHABLE_SECONDS if isinstance(parser, str) else ROBOTS_MAX_AGE
                hit = (time.monotonic() + ttl, parser)
                with self._lock:
                    self._parsers[origin] = hit
                    self._parsers.move_to_end(origin)
                    while len(self._parsers) > ROBOTS_CACHE_ENTRIES:
                        self._parsers.popitem(last=False)
        finally:
            origin_lock.release()
        parser = hit[1]
        if isinstance(parser, str):
            if time.monotonic() >= deadline_at:
                raise CrawlError(TIMEOUT, f"{url}: robots.txt of {origin} not read within the deadline")
            raise OSError(f"robots.txt of {origin} unreachable ({parser})")
        token = self.guard.settings.robots_token
        return parser.can_fetch(url, token), robots_rate(parser, token)

    def allowed(self, url: str, deadline_at: float) -> bool:
        return self.verdict(url, deadline_at)[0]

    def _load(self, origin: str, deadline_at: float):
        if self.folder is None:
            record = self._fetch(origin, deadline_at)
        else:
            import fcntl

            self.folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(origin.encode()).hexdigest()[:20]
            path = self.folder / f"{name}.json"
            with open(self.folder / f"{name}.lock", "w") as lock:
                while True:  # another process may be fetching it: wait, within this attempt's deadline
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline_at:
                            raise CrawlError(TIMEOUT, f"robots.txt of {origin} not read within the deadline") from None
                        time.sleep(0.02)
                record = json.loads(path.read_text()) if path.exists() else None
                if record is None or time.time() - record["fetched"] > ROBOTS_MAX_AGE:
                    record = self._fetch(origin, deadline_at)
                    if record.get("unreachable") is None:
                        tmp = path.with_suffix(".tmp")
                        tmp.write_text(json.dumps(record))
                        tmp.replace(path)
        if record.get("unreachable") is not None:
            return record["unreachable"]
        return parse_robots(record["body"].encode("utf-8"))

    def _fetch(self, origin: str, deadline_at: float) -> dict:
        scheme, rest = origin.split("://", 1)
        host, port = rest.rsplit(":", 1)
        netloc = host if int(port) == (443 if scheme == "https" else 80) else f"{host}:{port}"
        url = f"{scheme}://{netloc}/robots.txt"
        record = {"origin": origin, "fetched": time.time(), "body": "", "status": None, "unreachable": None}
        try:
            body = self.guard.fetch_once(
                url, max_bytes=ROBOTS_PARSE_BYTES, robots=False, deadline_at=deadline_at, truncate=True
            )
            # kept as text (the cache is JSON): the first 500 KiB, BOM dropped
            record["body"] = body[:ROBOTS_PARSE_BYTES].decode("utf-8-sig", errors="replace")
            record["status"] = 200
        except _Status as error:
            record["status"] = error.status
            if error.status >= 500 or error.status == 429:
                record["unreachable"] = str(error)
        except CrawlError as error:
            if error.reason in (TIMEOUT,):
                record["unreachable"] = str(error)
            else:
                record["status"] = error.reason  # blocked: treated as no rules
        except OSError as error:
            record["unreachable"] = str(error) or type(error).__name__
        log.info("robots.txt of %s: %s", origin, record["unreachable"] or record["status"])
        return record


# -- in the worker processes -------------------------------------------------------------------
_GUARD: Guard | None = None
_INSTALL_LOCK = threading.Lock()


def install_socket_guard(guard: Guard) -> None:
    """Refuse every IPv4/IPv6 connection of this process to an address the guard blocks."""

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            try:
                ipaddress.ip_address(str(address[0]).split("%")[0])
            except ValueError:  # a name: connect() resolves it; resolve here and check instead
                infos = _ORIGINAL_GETADDRINFO(address[0], address[1], sock.family, socket.SOCK_STREAM)
                address = infos[0][4]
            if not guard.connect_allowed(str(address[0]).split("%")[0]):
                raise BlockedConnection(f"{BLOCKED_ADDRESS}: connection to {address[0]} refused by the crawl guard")
        return address

    def connect(self, address):
        return _ORIGINAL_CONNECT(self, check(self, address))

    def connect_ex(self, address):
        return _ORIGINAL_CONNECT_EX(self, check(self, address))

    def sendto(self, data, *args):  # (data, address) or (data, flags, address); MSG_FASTOPEN connects
        return _ORIGINAL_SENDTO(self, data, *args[:-1], check(self, args[-1]))

    def sendmsg(self, buffers, *args, **kwargs):  # (buffers, ancdata, flags, address)
        if "address" in kwargs:
            kwargs["address"] = check(self, kwargs["address"])
        elif len(args) >= 3:
            args = (*args[:2], check(self, args[2]), *args[3:])
        return _ORIGINAL_SENDMSG(self, buffers, *args, **kwargs)

    # `_socket.socket` (below the `socket` module) made after the install: the same checks
    methods = {"connect": connect, "connect_ex": connect_ex, "sendto": sendto, "sendmsg": sendmsg}
    RawSocket = type("socket", (_ORIGINAL_RAW_SOCKET,), methods)  # noqa: N806 - a class

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.socket.sendmsg = sendmsg
    _socket.socket = _socket.SocketType = RawSocket


def activate(settings_json: str) -> Guard:
    """Install the guard in this process (once): the socket backstop and img2dataset's fetch function."""
    global _GUARD
    with _INSTALL_LOCK:
        if _GUARD is None:
            import img2dataset.downloader as downloader

            guard = Guard(CrawlSettings(**json.loads(settings_json)))
            install_socket_guard(guard)
            downloader.download_image_with_retry = download_image_with_retry
            _GUARD = guard
    return _GUARD


def download_image_with_retry(row, timeout, retries, user_agent_token, disallowed_header_directives):
    """img2dataset's `download_image_with_retry` contract: (key, BytesIO or None, error message or None)."""
    key, url = row
    try:
        return key, io.BytesIO(_GUARD.fetch(url, user_agent_token, disallowed_header_directives)), None
    except Exception as error:  # noqa: BLE001 - img2dataset records the message of any failure
        return key, None, error_message(error)


def error_message(error: BaseException) -> str:
    """The message img2dataset records for a failure: "<reason>: <detail>" only for the guard's own
    exceptions; any other message that would read as a guard reason (a server's status line
    "blocked_address: ...", say) is prefixed with the exception's class, so `reason_of` sees none."""
    if isinstance(error, CrawlError):
        return f"{error.reason}: {error.detail}"
    if isinstance(error, BlockedConnection):
        return str(error)  # "blocked_address: connection to ... refused by the crawl guard"
    message = str(error) or type(error).__name__
    if reason_of(message) is not None or reason_of(message.strip()) is not None:
        message = f"{type(error).__name__}: {message}"
    return message
