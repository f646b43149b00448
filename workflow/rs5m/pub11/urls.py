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

Safety (`check_url`): only http and https, at most `max_length` characters, no user info, no
backslash, no `%` in the host. Hosts that are IP literals (also the decimal, octal, hex and short
forms that inet_aton accepts, e.g. http://2130706433/ = 127.0.0.1) are judged by `address_blocked`:
loopback, private, shared (CGNAT), link-local (169.254/16, cloud metadata), benchmark, multicast,
unspecified, reserved and site-local ranges are blocked, and IPv6 forms that embed an IPv4 address
(IPv4-mapped, NAT64 64:ff9b::/96, 6to4, Teredo, IPv4-compatible) are judged by that address
(64:ff9b:1::/48, local-use NAT64, is always blocked); only the exact `allowed_networks` (CIDR) pass
whatever the rules say. Names are normalised (lower case, the dots U+3002, U+FF0E and U+FF61 read as
dots, IDNA, one trailing dot dropped) and refused when a label is empty or over 63 characters, the
host over 253, a single label (`metadata`, `instance-data`: search domains would complete them), a
local name (`localhost`) or under one of `blocked_suffixes` (`*.lan`, `*.corp`, `*.internal`, ...).
Names are not resolved here: the download stage checks the address each connection actually goes
to (`rs5m.pub11.crawl_guard`), with the same `address_blocked`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from rs5m.hosts import idna_host
from rs5m.hosts import url_host as url_host  # the stages' host key, re-exported

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Reasons written to the ledger by the URL filter.
REASON_BAD_SCHEME = "bad_url_scheme"
REASON_BAD_URL = "bad_url"
REASON_BLOCKED = "blocked_url"

LOCAL_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

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
        host = idna_host(host).rstrip(".")
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


def allowed_networks(networks: Iterable[str] = ()) -> tuple:
    """`urls.allowed_networks` (CIDR strings) as ip_network objects."""
    return tuple(ipaddress.ip_network(str(n), strict=False) for n in networks or ())


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo client, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: and ::1
        return ipaddress.IPv4Address(int(address))
    return None


def address_blocked(address, networks: Sequence = ()) -> bool:
    """Whether a connection to `address` (an ip_address or its string) is refused.

    `networks` (see `allowed_networks`) pass whatever the rules say; otherwise every address that
    is not plainly global is blocked, and IPv6 forms that embed an IPv4 address are judged by it.
    """
    if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = ipaddress.ip_address(str(address).split("%")[0])
    if any(address.version == n.version and address in n for n in networks):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_blocked(embedded, networks)
        if address in _NAT64_LOCAL or address.is_site_local:
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    )


def _suffixes(blocked_suffixes: Iterable[str]) -> tuple[str, ...]:
    return tuple(s.strip().lower().strip(".") for s in blocked_suffixes if s and s.strip(". "))


def check_url(
    url: str | None,
    networks: Sequence,
    blocked_suffixes: Iterable[str],
    max_length: int,
) -> str | None:
    """None when the URL may be downloaded, else the ledger reason that blocks it.

    `networks`: `allowed_networks(urls.allowed_networks)`; `blocked_suffixes`: `urls.blocked_suffixes`.
    """
    if not url or not url.strip():
        return REASON_BAD_URL
    url = url.strip()
    if len(url) > max_length:
        return REASON_BAD_URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return REASON_BAD_URL
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return REASON_BAD_SCHEME
    if "\\" in url or "@" in parts.netloc:
        return REASON_BLOCKED  # parsers disagree on where such a host ends
    host = parts.hostname
    if not host:
        return REASON_BAD_URL
    if ":" in host:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return REASON_BAD_URL
        return REASON_BLOCKED if "%" in host or address_blocked(address, networks) else None
    if "%" in host:
        return REASON_BLOCKED
    host = idna_host(host)
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if (
        not host
        or not _HOST_CHARS.match(host)
        or len(host) > MAX_HOST_LENGTH
        or any(not label or len(label) > MAX_LABEL_LENGTH for label in labels)
    ):
        return REASON_BAD_URL
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A name cannot end in a numeric label: resolvers read it as an address, so judge it as one.
        address = _inet_aton(host)
        if address is None:
            return REASON_BAD_URL
        if str(address) != host:
            # Decimal, octal, hex or short forms (`2130706433`, `0x7f.1`) are tricks, not addresses
            # anyone publishes: blocked even when the address itself is in `allowed_networks`.
            return REASON_BLOCKED
        return REASON_BLOCKED if address_blocked(address, networks) else None
    if host in LOCAL_NAMES or len(labels) == 1:
        return REASON_BLOCKED  # single labels are completed by DNS search domains (`metadata`)
    if any(host == s or host.endswith("." + s) for s in _suffixes(blocked_suffixes)):
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
