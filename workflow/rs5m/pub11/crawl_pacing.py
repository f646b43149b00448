"""Download stage, politeness: which parts a host's URLs go to, their order in a part, and the pacing.

The per-host bound (`download.per_host_rate` requests per second, `download.per_host_burst`) holds
for the whole stage, also when parts run at once on several machines, without shared state between
parts: the URL filter gives all URLs of a host to at most `download.parts_per_host` parts
(`host_part`), and each part paces the host at rate / parts_per_host (`part_rate`). Inside a part,
the img2dataset processes and threads share one pacer per host (`HostPacer`: a GCRA schedule kept
in a small locked file per host, so processes agree), and the URLs are ordered so that each host's
requests are spread over the part's run instead of sent back to back (`spread_order`).

Redirects can lead any part to any host, so with `download.per_host_rate` a run on one machine (or
on a shared file system) also keeps one stage-wide schedule per host in the run folder
(results/pub11/host_schedule, used by all parts): every request takes a slot there too, at the
whole stage's rate and burst. Hosts are keyed by one canonical spelling (`host_key`).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import time
from collections import Counter
from pathlib import Path
from typing import Sequence


def _hash(*values: str) -> int:
    data = "\x1f".join(values).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"rs5m-host").digest(), "big")


def host_key(host: str) -> str:
    """One spelling per host: lower case, IDNA, no trailing dot, no brackets; an IPv6 address
    compressed, and an IPv4-mapped one (`::ffff:127.0.0.1`, `::ffff:7f00:1`, `0:0:0:0:0:ffff:7f00:1`)
    as its IPv4 address."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return host
        return str(address.ipv4_mapped or address)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


def host_part(host: str, uid: str, parts: int, parts_per_host: int) -> int:
    """The part of a URL: one of `parts_per_host` consecutive parts chosen by its host, then by its uid.

    Stable from run to run; a host's URLs never fall in more than min(parts_per_host, parts) parts.
    """
    width = max(1, min(int(parts_per_host), int(parts)))
    first = _hash("part", host_key(host)) % parts
    return (first + _hash("slot", uid) % width) % parts


def part_rate(per_host_rate: float, per_host_burst: float, parts: int, parts_per_host: int) -> tuple[float, float]:
    """(rate, burst) one part may use for a host, so that all parts together stay within the stage's bound.

    The burst of a part is at least 1 (one request must be possible).
    """
    width = max(1, min(int(parts_per_host), int(parts)))
    return per_host_rate / width, max(1.0, per_host_burst / width)


def spread_order(hosts: Sequence[str], uids: Sequence[str]) -> list[int]:
    """Row order that spreads each host's URLs evenly over the run: the i-th of a host's n URLs at
    (i + phase) / n, phase in [0, 1) a hash of the host (so hosts with one URL are spread too).

    Deterministic: within a host, rows go by uid; ties between hosts by the same hash.
    """
    counts = Counter(hosts)
    seen: Counter = Counter()
    keys = []
    for index in sorted(range(len(uids)), key=lambda i: (hosts[i], uids[i])):
        host = hosts[index]
        position = (seen[host] + (_hash("order", host) % 1_000_003) / 1_000_003) / counts[host]
        seen[host] += 1
        keys.append((position, _hash("order", host), uids[index], index))
    return [key[-1] for key in sorted(keys)]


class HostPacer:
    """At most `rate` requests per second per host after a burst of `burst`, across threads and processes.

    GCRA: each host has a theoretical arrival time (TAT) in a file of `folder`, read and updated
    under an exclusive lock; a request is scheduled at max(now, TAT - (burst - 1) / rate) and moves
    the TAT on by 1 / rate. In any window of t seconds a host then gets at most rate * t + burst
    requests. The caller sleeps outside the lock. rate <= 0 means no pacing.
    """

    def __init__(self, folder: str | Path, rate: float, burst: float):
        self.folder = Path(folder)
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self.folder.mkdir(parents=True, exist_ok=True)

    def reserve(
        self, host: str, rate: float | None = None, burst: float | None = None, not_before: float = 0.0
    ) -> float:
        """The wall-clock time at which the next request to `host` may be sent (reserved for the caller).

        `host` is keyed by its canonical spelling (`host_key`). `rate`, `burst`: this host's own,
        lower ones (robots.txt's Crawl-delay or Request-rate). `not_before`: the earliest time the
        caller can send (a slot reserved in another schedule), so the slot reserved here is the
        one used.
        """
        now = time.time()
        rate = self.rate if rate is None else min(self.rate, rate) if self.rate > 0 else rate
        burst = self.burst if burst is None else max(1.0, min(self.burst, burst))
        if rate <= 0:
            return now
        interval = 1.0 / rate
        path = self.folder / f"{_hash('pacer', host_key(host)):016x}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 64, 0)
            tat = float(raw.decode() or 0.0)
            now = time.time()
            send_at = max(now, not_before, tat - (burst - 1.0) * interval)
            record = repr(max(tat, send_at) + interval).encode().ljust(32)
            os.pwrite(fd, record, 0)
        finally:
            os.close(fd)  # releases the lock
        return send_at

    def wait(self, host: str, rate: float | None = None, burst: float | None = None) -> None:
        delay = self.reserve(host, rate, burst) - time.time()
        if delay > 0:
            time.sleep(delay)
