"""Meta-captions (SPEC 4): label and geo fields of fMoW, BigEarthNet and PUB11 rows as a sentence.

Reads the RS3 reader tables, or the kept PUB11 table with the URL-dedup parts' native fields, and
writes `meta_caption`, `labels` and `geo` (a JSON string of the fields used) per uid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from functools import lru_cache
from typing import Any, Iterable, Mapping

from rs5m import geo

log = logging.getLogger(__name__)

# --- the template language -----------------------------------------------------------------
# `{field}` must be present or the variant is unusable; `[ ... ]` is an optional segment that is
# dropped when any field inside it is missing (segments nest). Of the variants of one clause,
# those that fill the most fields are kept and one of them is picked with the sample's seed, so a
# missing field removes its clause (or its segment), never the caption.

_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;])")


class _Missing(Exception):
    pass


@lru_cache(maxsize=None)
def _parse(text: str) -> tuple:
    """A template as a tree of literals, ("field", name) and ("optional", subtree); parsed once."""
    nodes: list = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "[{":
            if literal:
                nodes.append("".join(literal))
                literal = []
            if char == "{":
                end = text.index("}", i)
                nodes.append(("field", text[i + 1 : end]))
                i = end + 1
                continue
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unbalanced [ in template {text!r}")
            nodes.append(("optional", _parse(text[i + 1 : j - 1])))
            i = j
            continue
        literal.append(char)
        i += 1
    if literal:
        nodes.append("".join(literal))
    return tuple(nodes)


def _render_nodes(nodes: tuple, fields: Mapping[str, Any], filled: list[str]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "field":
            value = fields.get(node[1])
            if value is None or value == "" or value == []:
                raise _Missing(node[1])
            filled.append(node[1])
            out.append(str(value))
        else:
            inner: list[str] = []
            try:
                out.append(_render_nodes(node[1], fields, inner))
            except _Missing:
                continue
            filled.extend(inner)
    return "".join(out)


def render(template: str, fields: Mapping[str, Any]) -> tuple[str, int] | None:
    """One template with its fields: (text, number of fields used), or None if unusable."""
    filled: list[str] = []
    try:
        text = _render_nodes(_parse(template), fields, filled)
    except _Missing:
        return None
    if not filled:
        return None
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text).strip())
    return text, len(filled)


def render_clause(variants: Iterable[str], fields: Mapping[str, Any], rng: random.Random) -> str | None:
    """The seeded choice among the variants that use the most fields; None if none is usable."""
    rendered = [r for r in (render(v, fields) for v in variants) if r is not None]
    if not rendered:
        return None
    best = max(count for _, count in rendered)
    return rng.choice([text for text, count in rendered if count == best])


def compose(clauses: Iterable[Iterable[str]], fields: Mapping[str, Any], rng: random.Random) -> str:
    """Sentences of every usable clause, each capitalised; '' when no field is known."""
    sentences = []
    for variants in clauses:
        text = render_clause(list(variants), fields, rng)
        if text:
            if text[-1] not in ".!?":
                text += "."
            sentences.append(text[0].upper() + text[1:])
    return " ".join(sentences)


def sample_rng(seed: int | str, uid: str, salt: str = "metacaption") -> random.Random:
    """A random generator fixed by (config seed, uid): reruns pick the same templates."""
    digest = hashlib.blake2b(f"{seed}\x1f{salt}\x1f{uid}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


# --- templates (the project's own, several per clause) ---------------------------------------

FMOW_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "a satellite image[ over {place}][ taken in {season}] shows {category}[ in the {cells} cells of the frame]",
        "seen from orbit[ above {place}][ during {season}], the sensor captured {category}[ at the {cells} blocks]",
        "this[ {season}] scene[ near {place}] contains {category}[, located in the {cells} part of the image]",
        "a satellite image[ over {place}][ taken in {season}]",
        "seen from orbit[ above {place}][ during {season}]",
    ),
    (
        "the ground sample distance is {gsd}",
        "each pixel covers about {gsd} on the ground",
        "its resolution is a ground sample distance of {gsd}",
    ),
    (
        "it lies in UTM zone {utm}",
        "the scene belongs to UTM zone {utm}",
        "its geotag falls in UTM zone {utm}",
    ),
    (
        "it was acquired on {date}[ at {time}]",
        "the image is dated {date}[, {time}]",
        "the capture took place on {date}[ at {time}]",
    ),
    (
        "cloud cover was {cloud_cover}[ and the sensor scanned in {scan_direction} direction]",
        "clouds covered {cloud_cover} of the view[, with a {scan_direction} scan]",
        "the sensor scanned in {scan_direction} direction",
        "the scan direction was {scan_direction}",
    ),
    (
        "the target azimuth was {target_azimuth} and the off-nadir angle {off_nadir}",
        "it was viewed at a target azimuth of {target_azimuth} and {off_nadir} off nadir",
        "the target azimuth was {target_azimuth}",
        "the off-nadir angle was {off_nadir}",
    ),
)

BIGEARTHNET_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "a Sentinel-2 image[ from {season}] labelled {labels}",
        "this[ {season}] satellite image shows {labels}",
        "a satellite view[ taken in {season}] classified as {labels}",
        "a Sentinel-2 image from {season}",
        "this satellite image was taken in {season}",
    ),
    (
        "it belongs to UTM zone {utm}",
        "the patch lies in UTM zone {utm}",
        "its projection is UTM zone {utm}",
    ),
    (
        "it was acquired on {date}[ at {time}]",
        "the acquisition date is {date}[, {time}]",
        "recorded on {date}[ at {time}]",
    ),
)

YFCC_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "a photo taken near {place}[ in {season}][ on {date}]",
        "this picture comes from {place}[ and was taken in {season}][, {date}]",
        "photographed close to {place}[ during {season}][ on {date}]",
        "a photo taken in {season}[ on {date}]",
        "photographed on {date}",
    ),
)

CC3M_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "the image is tagged {labels}",
        "its labels are {labels}",
        "this picture shows {labels}",
    ),
)

REDCAPS_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "posted on {date}",
        "shared on {date}[ ({season})]",
        "this picture was posted in {season} on {date}",
    ),
)


# --- field extraction ------------------------------------------------------------------------


def parse_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def date_fields(stamp, latitude: float | None, season_rule: str) -> dict:
    when = geo.parse_timestamp(stamp)
    if when is None:
        return {}
    has_time = not (isinstance(stamp, str) and len(stamp.strip()) <= 10)
    return {
        "timestamp": when.isoformat(),
        "date": f"{when.strftime('%B')} {when.day}, {when.year}",
        "time": f"{when.hour:02d}:{when.minute:02d} UTC" if has_time else None,
        "season": geo.season(when.month, latitude, season_rule),
    }


def place_name(city: str | None, country: str | None) -> str | None:
    parts = [p for p in (city, country) if p]
    return ", ".join(parts) or None


def _angle(value) -> str | None:
    number = parse_float(value)
    return None if number is None else f"{number:.2f}°"


def _labels_text(labels: Iterable[str]) -> str | None:
    labels = [str(label).strip().lower() for label in labels if str(label).strip()]
    if not labels:
        return None
    return "'" + ", ".join(labels) + "'"


def fmow_fields(
    meta: Mapping[str, Any],
    image_size: tuple[int, int] | None = None,
    category_hint: str | None = None,
    *,
    season_rule: str,
    place: Mapping[str, Any] | None = None,
) -> dict:
    """Caption fields of one fMoW JSON record (SPEC 4); absent keys give absent fields.

    `place` is the reverse-geocoded nearest city (looked up in bulk by the caller); without it
    the lookup is done here.
    """
    boxes = meta.get("bounding_boxes") if isinstance(meta.get("bounding_boxes"), list) else []
    boxes = [b for b in boxes if isinstance(b, Mapping)]
    box0 = boxes[0] if boxes else {}
    box1 = boxes[1] if len(boxes) > 1 else box0
    vertex = geo.wkt_first_vertex(box0.get("raw_location")) or geo.wkt_first_vertex(meta.get("raw_location"))
    latitude = vertex[1] if vertex else None
    if vertex and place is None:
        place = geo.nearest_place(vertex[1], vertex[0])
    place = place or {}
    country = geo.country_name(meta.get("country_code")) or place.get("country")
    category = box1.get("category") or meta.get("category") or category_hint
    width = parse_float(meta.get("img_width")) or (image_size[0] if image_size else None)
    height = parse_float(meta.get("img_height")) or (image_size[1] if image_size else None)
    cells: list[str] = []
    box = box1.get("box") or box0.get("box")
    if box is not None and width and height:
        try:
            cells = geo.box_grid_cells(box, width, height)
        except (TypeError, ValueError):
            cells = []
    gsd = parse_float(meta.get("gsd"))
    cloud = parse_float(meta.get("cloud_cover"))
    scan = meta.get("scan_direction")
    fields = {
        "lat": latitude,
        "lon": vertex[0] if vertex else None,
        "city": place.get("city"),
        "country": country,
        "place": place_name(place.get("city"), country),
        "category": str(category).replace("_", " ") if category else None,
        "cells": " and ".join(cells) or None,
        "gsd": None if gsd is None else f"{gsd:.2f} m",
        "utm": str(meta["utm"]).strip() or None if meta.get("utm") else None,
        "cloud_cover": None if cloud is None else f"{cloud:g}%",
        "scan_direction": str(scan).strip().lower() or None if scan else None,
        "target_azimuth": _angle(meta.get("target_azimuth_dbl")),
        "off_nadir": _angle(meta.get("off_nadir_angle_dbl")),
    }
    fields.update(date_fields(meta.get("timestamp"), latitude, season_rule))
    return fields


def bigearthnet_fields(meta: Mapping[str, Any], season_rule: str) -> dict:
    """Caption fields of one BigEarthNet patch: labels, season and time, UTM zone (SPEC 4).

    `meta` is the reader's record: the JSON keys (`labels`, `projection`, `acquisition_date` or
    the S1 `acquisition_time`) plus what the reader took from the GeoTIFF (`raster_crs`,
    `center_lat`, `patch_time` from the patch name) for v2 and for JSONs with empty fields.
    """
    utm = geo.utm_zone_from_wkt(meta.get("projection")) or geo.utm_zone_from_wkt(meta.get("raster_crs"))
    # The letter of a "UTM zone 29N" WKT is the hemisphere, which is all a season needs; it is
    # trusted over a centre computed from the raster grid (test rasters carry a dummy grid).
    latitude = (1.0 if utm.endswith("N") else -1.0) if utm else parse_float(meta.get("center_lat"))
    stamp = next(
        (
            meta.get(k)
            for k in ("acquisition_date", "acquisition_time", "patch_time")
            if geo.parse_timestamp(meta.get(k)) is not None
        ),
        None,
    )
    labels = list(meta.get("labels") or [])
    fields = {
        "lat": parse_float(meta.get("center_lat")),
        "lon": parse_float(meta.get("center_lon")),
        "labels": _labels_text(labels),
        "utm": utm,
    }
    fields.update(date_fields(stamp, latitude, season_rule))
    return fields


CLAUSES = {
    "fmow": FMOW_CLAUSES,
    "bigearthnet": BIGEARTHNET_CLAUSES,
    "yfcc15m": YFCC_CLAUSES,
    "cc3m": CC3M_CLAUSES,
    "redcaps": REDCAPS_CLAUSES,
}


def meta_caption(group: str, fields: Mapping[str, Any], uid: str, seed: int | str) -> str:
    """The meta-caption of one sample; '' for groups without templates (MillionAID, most PUB11)."""
    clauses = CLAUSES.get(group)
    if not clauses:
        return ""
    return compose(clauses, fields, sample_rng(seed, uid))


# --- the RS3 stage ---------------------------------------------------------------------------


def geo_json(fields: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in fields.items() if v is not None and k not in ("place",)}
    return json.dumps(keep, ensure_ascii=False, sort_keys=True)


# --- the PUB11 stage ------------------------------------------------------------------------
