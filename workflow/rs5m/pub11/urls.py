"""URL stage helpers: normalisation (the URL-dedup key), the safety filter, and the duplicate priority rule.

Pure functions over strings and columns; `rs5m.pub11.url_filter` and `rs5m.pub11.image_dedup` apply them to tables.

Normalisation (used only as the dedup key; the original URL is what gets downloaded):
- surrounding whitespace stripped; scheme and host lower-cased; a trailing dot on the host dropped;
  a non-ASCII host converted to IDNA (punycode), as a resolver would;
- the default port (80 for http, 443 for https) dropped, an empty path becomes "/";
- the fragment dropped (never sent to the server);
- percent-escapes upper-cased and escapes of unreserved characters decoded (RFC 3986 6.2.2).
Deliberately kept: the scheme (http and https may serve different bytes; image dedup catches the
rest), path case and the query string in its order (servers may treat either as significant),
and user info.

Safety: only http and https; hosts that are IP literals (also the decimal, octal, hex and short
forms that inet_aton accepts, e.g. http://2130706433/ = 127.0.0.1) in loopback, private, shared,
link-local (169.254/16, cloud metadata), multicast, unspecified or otherwise non-global ranges,
IPv6 included (IPv4-mapped addresses are judged as IPv4), and local names (`localhost`,
`*.localhost`, `*.local`, `*.internal`, `*.localdomain`, `*.home.arpa`) are blocked. Names are not
resolved: a public name that resolves (or redirects) to a private address is not caught here, so a
production run still needs egress rules at the network level.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Reasons written to the ledger by the URL filter.
REASON_BAD_SCHEME = "bad_url_scheme"
REASON_BAD_URL = "bad_url"
REASON_BLOCKED = "blocked_url"

LOCAL_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")

# Priority of SPEC 2.4: LAION-COCO copies go first; LAION-2B, LAION-400M and COYO-700M are preferred.
LAST_RESORT_SOURCES = frozenset({"laioncoco"})
PREFERRED_SOURCES = frozenset({"laion2b", "laion400m", "coyo700m"})

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_HOST_CHARS = re.compile(r"^[a-z0-9._-]+$")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


def _normalise_escapes(text: str) -> str:
    def fix(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(fix, text)


def _idna_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def normalise_url(url: str) -> str:
    """The dedup key of a URL (see the module docstring for what is and is not normalised).

    URLs that cannot be parsed are returned stripped but otherwise unchanged.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal: compress it so that equal addresses compare equal
        try:
            host = "[" + str(ipaddress.ip_address(host.split("%")[0])) + "]"
        except ValueError:
            host = "[" + host + "]"
    else:
        host = _idna_host(host)
    netloc = host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    path = _normalise_escapes(parts.path) or "/"
    query = _normalise_escapes(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form inet_aton accepts (1 to 4 parts, decimal/octal/hex), else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part.startswith(("0x", "0X")):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            return None
    # The last part fills all remaining bytes: a.b.c.d, a.b.(16 bits), a.(24 bits), (32 bits).
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def _address_blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return not allow_loopback
    return address.is_multicast or address.is_unspecified or not address.is_global


def check_url(url: str | None, allow_loopback: bool = False) -> str | None:
    """None when the URL may be downloaded, else the ledger reason that blocks it."""
    if not url or not url.strip():
        return REASON_BAD_URL
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return REASON_BAD_URL
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return REASON_BAD_SCHEME
    host = parts.hostname
    if not host:
        return REASON_BAD_URL
    if ":" in host:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return REASON_BAD_URL
        return REASON_BLOCKED if _address_blocked(address, allow_loopback) else None
    host = _idna_host(host)
    if not host or not _HOST_CHARS.match(host):
        return REASON_BAD_URL
    if _NUMERIC_LABEL.fullmatch(host.split(".")[-1]):
        # A name cannot end in a numeric label: resolvers read it as an address, so judge it as one.
        address = _inet_aton(host)
        if address is None:
            return REASON_BAD_URL
        return REASON_BLOCKED if _address_blocked(address, allow_loopback) else None
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return None if allow_loopback else REASON_BLOCKED
    if host.endswith(LOCAL_SUFFIXES):
        return REASON_BLOCKED
    return None


def stable_hash(uid: str) -> int:
    """A 62-bit hash of a sample id that does not change between runs or machines."""
    return int.from_bytes(hashlib.blake2b(uid.encode("utf-8"), digest_size=8, person=b"rs5m-pick").digest(), "big") >> 2


def priority_rank(source: str, uid: str) -> int:
    """Rank of a copy inside a duplicate group: the lowest rank is kept (SPEC 2.4).

    LAION-COCO copies rank last, copies from LAION-2B / LAION-400M / COYO-700M first, and the stable
    hash of the uid orders copies of equal standing, so every rerun keeps the same sample.
    """
    if source in LAST_RESORT_SOURCES:
        tier = 2
    elif source in PREFERRED_SOURCES:
        tier = 0
    else:
        tier = 1
    return (tier << 62) | stable_hash(uid)


def priority_ranks(sources: Sequence[str], uids: Sequence[str]) -> np.ndarray:
    """`priority_rank` over two columns, as uint64 (fits: tier < 4 shifted by 62)."""
    return np.fromiter((priority_rank(s, u) for s, u in zip(sources, uids)), dtype=np.uint64, count=len(uids))


def pick_kept(copies: Iterable[tuple[str, str]]) -> str:
    """The uid kept among (source, uid) copies of one duplicate group."""
    return min(copies, key=lambda copy: priority_rank(copy[0], copy[1]))[1]
