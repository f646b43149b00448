"""Host names as every stage keys them: lower case, other full stops read as dots, IDNA (punycode).

The URL stage, the download stage and the build plan group URLs by this one host key, and assign
a host's URLs to parts (host_part) at a per-part share of the per-host rate (part_rate) the same way.
"""

from __future__ import annotations

import hashlib
import ipaddress
from urllib.parse import urlsplit

# Other spellings of the full stop that IDNA maps to "." (ideographic, fullwidth, halfwidth ideographic).
_OTHER_DOTS = ("\u3002", "\uff0e", "\uff61")


def _dots(host: str) -> str:
    for dot in _OTHER_DOTS:
        host = host.replace(dot, ".")
    return host


def idna_host(host: str) -> str:
    """Lower case, other full stops read as dots, IDNA (punycode) when not ASCII; trailing dots kept."""
    host = _dots(host.lower())
    if host.isascii():
        return host
    try:
        return _dots(host.encode("idna").decode("ascii"))
    except UnicodeError:
        return host


def url_host(url: str) -> str:
    """The host of a URL as the rules see it (lower case, IDNA, no trailing dot); "" when none."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host if ":" in host else idna_host(host).rstrip(".")


def host_hash(*values: str) -> int:
    """A stable 64-bit hash of `values` (blake2b): the pacing's and the part assignment's."""
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
    first = host_hash("part", host_key(host)) % parts
    return (first + host_hash("slot", uid) % width) % parts


def part_rate(per_host_rate: float, per_host_burst: float, parts: int, parts_per_host: int) -> tuple[float, float]:
    """(rate, burst) one part may use for a host, so that all parts together stay within the stage's bound.

    The burst of a part is at least 1 (one request must be possible).
    """
    width = max(1, min(int(parts_per_host), int(parts)))
    return per_host_rate / width, max(1.0, per_host_burst / width)
