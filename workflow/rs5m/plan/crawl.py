"""Crawl plan: the host histogram after the URL filter and the download stage's makespan bound.

The bound is the one the pacing enforces (rs5m.hosts, as rs5m.pub11.crawl_pacing paces it): a host's URLs lie in at most
w = min(parts_per_host, parts) parts (`host_part`), and each part paces the host with its own GCRA
schedule at rate r / w and burst b = max(1, per_host_burst / w) (`part_rate`). A part that holds n
URLs of a host sends the first b at once and the k-th after (k - b) * w / r seconds, so it cannot
finish that host before max(0, n - b) * w / r. The stage cannot finish before the largest of these
over every (host, part): with all parts running at once and every fetch instantaneous, this is the
shortest possible crawl, however many machines run it. per_host_rate 0 disables pacing (no bound).

Under `politeness: adaptive` a host's stage-wide pace lies between `min_rate` and
`per_host_rate_max` (rs5m.pub11.crawl_pacing.AdaptivePacer, split over the parts as above): the best
case is the bound above at r = per_host_rate_max with its bursts, the worst case every host slowed to
r = min_rate, which gets no bursts (b = 1): max(0, n - 1) * w / min_rate. robots.txt's Crawl-delay
may slow a host further; neither case counts it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from rs5m.hosts import host_part, part_rate


@dataclass(frozen=True)
class HostBound:
    host: str
    urls: int
    parts: int  # parts that hold the host's URLs
    max_part_urls: int  # URLs of the host in its fullest part
    seconds: float  # the earliest the stage can finish this host


def host_part_counts(hosts: Sequence[str], uids: Sequence[str], parts: int, parts_per_host: int) -> Counter:
    """{(host, part): URLs}, the parts assigned exactly as the URL filter assigns them."""
    return Counter((h, host_part(h, u, parts, parts_per_host)) for h, u in zip(hosts, uids))


def even_part_counts(host_urls: dict[str, int], parts: int, parts_per_host: int) -> Counter:
    """{(host, slot): URLs} for a histogram without uids: a host's URLs split as evenly as possible
    over its w parts (the best case of the hash split; used for plans from published counts)."""
    width = max(1, min(int(parts_per_host), int(parts)))
    counts: Counter = Counter()
    for host, n in host_urls.items():
        for slot in range(min(width, n)):
            counts[(host, slot)] = n // width + (1 if slot < n % width else 0)
    return counts


def part_seconds(urls: int, per_host_rate: float, per_host_burst: float, parts: int, parts_per_host: int) -> float:
    """The earliest one part can send its `urls` requests to one host under the part's GCRA pacer."""
    if per_host_rate <= 0:
        return 0.0
    rate, burst = part_rate(per_host_rate, per_host_burst, parts, parts_per_host)
    return max(0.0, urls - burst) / rate


def host_bounds(
    counts: Counter, per_host_rate: float, per_host_burst: float, parts: int, parts_per_host: int
) -> list[HostBound]:
    """Every host's bound, largest first (ties by host name)."""
    by_host: dict[str, list[int]] = {}
    for (host, _part), n in counts.items():
        by_host.setdefault(host, []).append(n)
    bounds = [
        HostBound(
            host=host,
            urls=sum(ns),
            parts=len(ns),
            max_part_urls=max(ns),
            seconds=part_seconds(max(ns), per_host_rate, per_host_burst, parts, parts_per_host),
        )
        for host, ns in by_host.items()
    ]
    return sorted(bounds, key=lambda b: (-b.seconds, -b.urls, b.host))


def makespan_bound(
    counts: Counter, per_host_rate: float, per_host_burst: float, parts: int, parts_per_host: int
) -> float:
    bounds = host_bounds(counts, per_host_rate, per_host_burst, parts, parts_per_host)
    return bounds[0].seconds if bounds else 0.0


def histogram(host_urls: Iterable[int]) -> list[tuple[int, int]]:
    """[(URLs a host has, number of hosts with that many)], for the log-log plot."""
    return sorted(Counter(host_urls).items())


def settings_effect(
    hosts: Sequence[str] | None,
    uids: Sequence[str] | None,
    host_urls: dict[str, int],
    per_host_rate: float,
    per_host_burst: float,
    parts: int,
    parts_per_host: int,
    rate_key: str,
) -> list[dict]:
    """The bound under the configured settings and under each one changed alone (x0.5, x2, x4);
    `rate_key`: the config key `per_host_rate` stands for (per_host_rate_max under adaptive politeness)."""
    variants = [("configured", per_host_rate, parts, parts_per_host)]
    for factor in (0.5, 2, 4):
        variants.append((f"{rate_key} x{factor:g}", per_host_rate * factor, parts, parts_per_host))
    for value in sorted({1, 2, parts_per_host * 2, parts_per_host * 4} - {parts_per_host}):
        variants.append((f"parts_per_host {value}", per_host_rate, parts, value))
    for value in sorted({max(1, parts // 2), parts * 2} - {parts}):
        variants.append((f"parts {value}", per_host_rate, value, parts_per_host))
    rows = []
    for label, rate, n_parts, pph in variants:
        if hosts is not None and uids is not None:
            counts = host_part_counts(hosts, uids, n_parts, pph)
        else:
            counts = even_part_counts(host_urls, n_parts, pph)
        rows.append(
            {
                "setting": label,
                rate_key: rate,
                "parts": n_parts,
                "parts_per_host": pph,
                "bound_s": makespan_bound(counts, rate, per_host_burst, n_parts, pph),
            }
        )
    return rows
