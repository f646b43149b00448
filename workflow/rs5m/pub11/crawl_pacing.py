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

With `download.politeness: adaptive` a part paces each host by its own answers instead
(`AdaptivePacer`, `next_pace`: Heritrix's delay = delay_factor x fetch time, within
[1 / per_host_rate_max, 1 / min_rate], doubled on 429/503 and timeouts, never shorter than
robots.txt allows), and the stage-wide schedule runs at per_host_rate_max. Every process also
appends its fetch times per host to a file of its own (`HostTimes`), which `rs5m status` reads.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rs5m.hosts import host_hash as _hash
from rs5m.hosts import host_key, host_part, part_rate  # noqa: F401 - the download stage's names for them


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


# -- adaptive politeness (download.politeness: adaptive) -----------------------------------------
# What an answer tells the controller: a usable answer (its fetch time counts), a request to slow
# down (429, 503, a timeout: the delay doubles), or a failure that says nothing about the pace.
ANSWERED = "answered"
BACK_OFF = "back_off"
FAILED = "failed"
BACK_OFF_STATUSES = (429, 503)
# Per fast answer the delay shrinks by this factor at most (never below delay_factor x fetch time):
# a host earns a pace above per_host_rate only by answering quickly many times (from 2 to 10
# req/s: 16 answers), so a small site is done before it is sped up much, and one answer cannot
# undo a back-off. Slowing down is immediate.
RECOVERY = 0.9
# Weight of the newest fetch time in the host's running mean: one slow image moves the delay by
# a third of its excess, not all of it.
FETCH_WEIGHT = 0.3


@dataclass(frozen=True)
class AdaptiveBounds:
    """The stage-wide limits of an adaptive host pace, in requests per second (config `download`):
    `min_rate` <= rate <= `per_host_rate_max`, starting at `per_host_rate`; the delay between two
    requests follows `delay_factor` x the host's mean fetch time."""

    min_rate: float
    per_host_rate_max: float
    per_host_rate: float
    delay_factor: float

    @property
    def shortest(self) -> float:
        return 1.0 / self.per_host_rate_max

    @property
    def longest(self) -> float:
        return 1.0 / self.min_rate

    @property
    def start(self) -> float:
        """The delay of a host not heard from yet: per_host_rate's, within the bounds."""
        rate = self.per_host_rate if self.per_host_rate > 0 else self.per_host_rate_max
        return min(self.longest, max(self.shortest, 1.0 / rate))


@dataclass(frozen=True)
class HostPace:
    """A host's adaptive state: the delay between its requests for the whole stage (seconds) and
    the running mean of its fetch times (None before the first answer)."""

    delay: float
    fetch_seconds: float | None = None


def next_pace(pace: HostPace, bounds: AdaptiveBounds, outcome: str, seconds: float) -> HostPace:
    """The host's pace after one request that took `seconds` and ended as `outcome`.

    Heritrix's rule with a memory: the target delay is delay_factor x the mean fetch time; a slower
    host gets it at once, a faster one approaches it by RECOVERY per answer. 429/503 and timeouts
    double the delay (halve the rate). Always within [1 / per_host_rate_max, 1 / min_rate].
    """
    delay, mean = pace.delay, pace.fetch_seconds
    if outcome == BACK_OFF:
        delay = 2.0 * delay
    elif outcome == ANSWERED:
        mean = seconds if mean is None else (1.0 - FETCH_WEIGHT) * mean + FETCH_WEIGHT * seconds
        target = bounds.delay_factor * mean
        delay = target if target >= delay else max(target, RECOVERY * delay)
    return HostPace(min(bounds.longest, max(bounds.shortest, delay)), mean)


def robots_delay(delay: float, robots_rate: float | None) -> float:
    """The delay robots.txt's Crawl-delay / Request-rate (requests per second) allow: never shorter."""
    if robots_rate is None or robots_rate == float("inf"):
        return delay
    return max(delay, 1.0 / robots_rate) if robots_rate > 0 else delay


class AdaptivePacer:
    """A host's adaptive pace, shared by the processes and threads of a part: a GCRA schedule as
    HostPacer's whose interval is the host's current delay (`next_pace`), kept with the delay and
    the mean fetch time in a small locked file per host.

    The part paces a host at its share (`share`: 1 / the parts its URLs go to) of the stage-wide
    rate 1 / delay, with a part's burst (as requests at the ceiling's pace) only while the host runs
    at per_host_rate or faster (a host that was slowed down gets no bursts). Unlike HostPacer, a request claims its slot only
    when it is due (`claim` waits, then claims at the pace of that moment): a slot reserved ahead
    would keep the pace of the moment it was reserved, so a host that starts answering 429 would
    get the requests queued for it at the old pace, and one that answers quickly would wait for
    them. Every interval is at least 1 / per_host_rate_max, so in any window of t seconds a part
    sends at most share x per_host_rate_max x t + burst.
    """

    POLL_SECONDS = 1.0  # a waiting request looks again at least this often (the pace may have changed)

    def __init__(self, folder: str | Path, bounds: AdaptiveBounds, share: float, burst: float):
        self.folder = Path(folder)
        self.bounds = bounds
        self.share = float(share)
        self.burst = max(1.0, float(burst))
        self.folder.mkdir(parents=True, exist_ok=True)

    def _update(self, host: str, change):
        """Read the host's record under its lock, let `change(tat, pace)` return the new ones and a
        result, write them back when they changed; return the result."""
        path = self.folder / f"{_hash('adaptive', host_key(host)):016x}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            fields = os.pread(fd, 96, 0).decode().split()
            if len(fields) == 3:
                tat, pace = float(fields[0]), HostPace(float(fields[1]), None if fields[2] == "-" else float(fields[2]))
            else:
                tat, pace = 0.0, HostPace(self.bounds.start)
            new_tat, new_pace, result = change(tat, pace)
            if (new_tat, new_pace) != (tat, pace) or len(fields) != 3:
                mean = "-" if new_pace.fetch_seconds is None else repr(new_pace.fetch_seconds)
                os.pwrite(fd, f"{new_tat!r} {new_pace.delay!r} {mean}".encode().ljust(96), 0)
        finally:
            os.close(fd)  # releases the lock
        return result

    def _slot(self, tat: float, pace: HostPace, robots_rate: float | None, now: float) -> tuple[float, float]:
        """(the time the next request is due, the TAT after it): GCRA at the host's current delay."""
        delay = robots_delay(pace.delay, robots_rate)
        interval = delay / self.share
        # the burst's tolerance in time at the ceiling's interval (GCRA's bound needs one fixed
        # tolerance); none for a host slowed below per_host_rate
        tolerance = (self.burst - 1.0) * self.bounds.shortest / self.share if delay <= self.bounds.start else 0.0
        due = tat - tolerance
        return due, max(tat, now, due) + interval

    def due(self, host: str, robots_rate: float | None = None) -> float:
        """When the next request to `host` is due at its current pace (nothing claimed)."""
        return self._update(host, lambda tat, pace: (tat, pace, self._slot(tat, pace, robots_rate, time.time())[0]))

    def claim(self, host: str, robots_rate: float | None = None, give_up_at: float | None = None) -> float | None:
        """Wait until a request to `host` is due, claim it and return the time it was claimed (now);
        None, at once, when it would be due only after `give_up_at` (nothing claimed).

        `robots_rate`: the host's robots.txt Crawl-delay / Request-rate (requests per second), which
        can only lengthen the delay."""
        while True:

            def change(tat: float, pace: HostPace):
                now = time.time()
                due, after = self._slot(tat, pace, robots_rate, now)
                return (after, pace, None) if due <= now else (tat, pace, due)

            due = self._update(host, change)
            if due is None:
                return time.time()
            if give_up_at is not None and due > give_up_at:
                return None
            time.sleep(max(0.0, min(due - time.time(), self.POLL_SECONDS)))

    def pace(self, host: str) -> HostPace:
        """The host's current pace (as the part's processes share it)."""
        return self._update(host, lambda tat, pace: (tat, pace, pace))

    def observe(self, host: str, outcome: str, seconds: float) -> HostPace:
        """Feed one request's outcome and fetch time into the host's pace; returns the new pace."""

        def change(tat: float, pace: HostPace):
            new = next_pace(pace, self.bounds, outcome, seconds)
            return tat, new, new

        return self._update(host, change)


# -- fetch times per host, for `rs5m status` ------------------------------------------------------
TIMING_FLUSH_SECONDS = 10.0


class HostTimes:
    """Fetch count, seconds and errors per host of one process, appended to a file of its own in
    `folder` (`<pid>-<random>.tsv`, lines `host<TAB>count<TAB>seconds<TAB>errors`, each the tally
    since the previous flush) at most every TIMING_FLUSH_SECONDS and after each shard. Readers sum
    the lines of every file and skip a last line without its newline, so they need no lock."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / f"{os.getpid()}-{os.urandom(4).hex()}.tsv"
        self._lock = threading.Lock()
        self._pending: dict[str, list] = {}
        self._flushed = time.monotonic()

    def record(self, host: str, seconds: float, error: bool) -> None:
        with self._lock:
            tally = self._pending.setdefault(host_key(host), [0, 0.0, 0])
            tally[0] += 1
            tally[1] += seconds
            tally[2] += int(error)
            due = time.monotonic() - self._flushed >= TIMING_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        if not pending:
            return
        text = "".join(f"{host}\t{n}\t{seconds:.6f}\t{errors}\n" for host, (n, seconds, errors) in pending.items())
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
