"""Host names as every stage keys them: lower case, other full stops read as dots, IDNA (punycode).

The URL stage, the download stage and the build plan group URLs by this one host key.
"""

from __future__ import annotations

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
