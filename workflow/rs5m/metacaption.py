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
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m import duck, geo
from rs5m.columns import UID, uid_bucket
from rs5m.sources import sql_string

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


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _date_fields(stamp, latitude: float | None, season_rule: str) -> dict:
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


def _place(city: str | None, country: str | None) -> str | None:
    parts = [p for p in (city, country) if p]
    return ", ".join(parts) or None


def _angle(value) -> str | None:
    number = _float(value)
    return None if number is None else f"{number:.2f}°"


def _labels_text(labels: Iterable[str]) -> str | None:
    labels = [str(label).strip().lower() for label in labels if str(label).strip()]
    if not labels:
        return None
    return "'" + ", ".join(labels) + "'"


def fmow_fields(meta: Mapping[str, Any], image_size: tuple[int, int] | None = None,
                category_hint: str | None = None, season_rule: str = "hemisphere",
                place: Mapping[str, Any] | None = None) -> dict:
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
    width = _float(meta.get("img_width")) or (image_size[0] if image_size else None)
    height = _float(meta.get("img_height")) or (image_size[1] if image_size else None)
    cells: list[str] = []
    box = box1.get("box") or box0.get("box")
    if box is not None and width and height:
        try:
            cells = geo.box_grid_cells(box, width, height)
        except (TypeError, ValueError):
            cells = []
    gsd = _float(meta.get("gsd"))
    cloud = _float(meta.get("cloud_cover"))
    scan = meta.get("scan_direction")
    fields = {
        "lat": latitude,
        "lon": vertex[0] if vertex else None,
        "city": place.get("city"),
        "country": country,
        "place": _place(place.get("city"), country),
        "category": str(category).replace("_", " ") if category else None,
        "cells": " and ".join(cells) or None,
        "gsd": None if gsd is None else f"{gsd:.2f} m",
        "utm": str(meta["utm"]).strip() or None if meta.get("utm") else None,
        "cloud_cover": None if cloud is None else f"{cloud:g}%",
        "scan_direction": str(scan).strip().lower() or None if scan else None,
        "target_azimuth": _angle(meta.get("target_azimuth_dbl")),
        "off_nadir": _angle(meta.get("off_nadir_angle_dbl")),
    }
    fields.update(_date_fields(meta.get("timestamp"), latitude, season_rule))
    return fields


def bigearthnet_fields(meta: Mapping[str, Any], season_rule: str = "hemisphere") -> dict:
    """Caption fields of one BigEarthNet patch: labels, season and time, UTM zone (SPEC 4).

    `meta` is the reader's record: the JSON keys (`labels`, `projection`, `acquisition_date` or
    the S1 `acquisition_time`) plus what the reader took from the GeoTIFF (`raster_crs`,
    `center_lat`, `patch_time` from the patch name) for v2 and for JSONs with empty fields.
    """
    utm = geo.utm_zone_from_wkt(meta.get("projection")) or geo.utm_zone_from_wkt(meta.get("raster_crs"))
    # The letter of a "UTM zone 29N" WKT is the hemisphere, which is all a season needs; it is
    # trusted over a centre computed from the raster grid (test rasters carry a dummy grid).
    latitude = (1.0 if utm.endswith("N") else -1.0) if utm else _float(meta.get("center_lat"))
    stamp = next(
        (meta.get(k) for k in ("acquisition_date", "acquisition_time", "patch_time")
         if geo.parse_timestamp(meta.get(k)) is not None),
        None,
    )
    labels = list(meta.get("labels") or [])
    fields = {
        "lat": _float(meta.get("center_lat")),
        "lon": _float(meta.get("center_lon")),
        "labels": _labels_text(labels),
        "utm": utm,
    }
    fields.update(_date_fields(stamp, latitude, season_rule))
    return fields


def cc3m_select_labels(labels: list[str], scores: list[float], threshold: float = 0.9, top: int = 3) -> list[str]:
    """SPEC 4 rule: >= `top` tags with prob >= threshold -> the first `top`; else all of them;
    else the single most probable tag."""
    pairs = [(str(l).strip(), _float(s)) for l, s in zip(labels, scores)]
    pairs = [(l, s) for l, s in pairs if l and s is not None]
    if not pairs:
        return []
    confident = [l for l, s in pairs if s >= threshold]
    if len(confident) >= top:
        return confident[:top]
    if confident:
        return confident
    return [max(pairs, key=lambda p: p[1])[0]]


def parse_cc3m_labels_line(line: str) -> tuple[str, list[str], list[float]] | None:
    """One line of the CC3M image-labels TSV: caption, url, labels, MIDs, confidence scores
    (comma-separated lists). Returns (url, labels, scores) or None for a malformed line."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 5:
        return None
    url, labels, scores = parts[1], parts[2].split(","), parts[4].split(",")
    try:
        return url, labels, [float(s) for s in scores]
    except ValueError:
        return None


def read_cc3m_labels(path: str | Path, urls: Iterable[str] | None = None) -> dict[str, list[str]]:
    """url -> selected labels, from the CC3M labels file; only `urls` when given.

    Malformed lines are skipped and counted in the log (the file is 3.3 M lines; one bad line
    must not cost the rest).
    """
    wanted = None if urls is None else set(urls)
    selected: dict[str, list[str]] = {}
    bad, first_bad = 0, None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parsed = parse_cc3m_labels_line(line)
            if parsed is None:
                bad += 1
                first_bad = first_bad or number
                continue
            url, labels, scores = parsed
            url = url.strip()
            if wanted is None or url in wanted:
                selected[url] = cc3m_select_labels(labels, scores)
    if bad:
        log.warning("%s: %d malformed lines skipped (first: line %d)", path, bad, first_bad)
    return selected


def pub11_fields(source: str, row: Mapping[str, Any], season_rule: str = "hemisphere",
                 cc3m_labels: Mapping[str, list[str]] | None = None,
                 place: Mapping[str, Any] | None = None) -> dict:
    """Caption fields of a PUB11 row from its native `src_` columns (YFCC, CC3M, RedCaps)."""
    if source == "yfcc15m":
        point = geo.valid_lat_lon(row.get("src_latitude"), row.get("src_longitude"))
        if point and place is None:
            place = geo.nearest_place(*point)
        place = place if point else {}
        fields = {
            "lat": point[0] if point else None,
            "lon": point[1] if point else None,
            "city": (place or {}).get("city"),
            "country": (place or {}).get("country"),
            "place": _place((place or {}).get("city"), (place or {}).get("country")),
        }
        fields.update(_date_fields(row.get("src_date_taken"), fields["lat"], season_rule))
        return fields
    if source == "cc3m":
        labels = (cc3m_labels or {}).get((row.get("url") or "").strip(), [])
        return {"labels": ", ".join(labels) or None, "label_list": labels}
    if source == "redcaps":
        # created_utc has no place: the season follows the configured rule with no latitude.
        return _date_fields(row.get("src_created_utc"), None, season_rule)
    return {}


_CLAUSES = {
    "fmow": FMOW_CLAUSES,
    "bigearthnet": BIGEARTHNET_CLAUSES,
    "yfcc15m": YFCC_CLAUSES,
    "cc3m": CC3M_CLAUSES,
    "redcaps": REDCAPS_CLAUSES,
}


def meta_caption(group: str, fields: Mapping[str, Any], uid: str, seed: int | str = 0) -> str:
    """The meta-caption of one sample; '' for groups without templates (MillionAID, most PUB11)."""
    clauses = _CLAUSES.get(group)
    if not clauses:
        return ""
    return compose(clauses, fields, sample_rng(seed, uid))


# --- the RS3 stage ---------------------------------------------------------------------------

RS3_META_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("dataset", pa.string()),
        ("img_name", pa.string()),
        ("image_path", pa.string()),
        ("meta_caption", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("geo", pa.string()),
    ]
)


def _geo_json(fields: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in fields.items() if v is not None and k not in ("place",)}
    return json.dumps(keep, ensure_ascii=False, sort_keys=True)


def rs3_meta_rows(rows: list[dict], seed: int | str = 0, season_rule: str = "hemisphere") -> list[dict]:
    """Meta-caption, labels and geo for reader rows (`uid, dataset, img_name, image_path, labels,
    meta` with `meta` a JSON string). fMoW places are reverse-geocoded in one bulk lookup."""
    metas = []
    for row in rows:
        try:
            meta = json.loads(row.get("meta") or "{}")
        except json.JSONDecodeError:
            meta = {}
        metas.append(meta if isinstance(meta, dict) else {})
    # One KD-tree query for every fMoW vertex instead of one per image.
    points, owners = [], []
    for index, (row, meta) in enumerate(zip(rows, metas)):
        if row["dataset"] == "fmow":
            boxes = meta.get("bounding_boxes") if isinstance(meta.get("bounding_boxes"), list) else []
            box0 = boxes[0] if boxes and isinstance(boxes[0], dict) else {}
            vertex = geo.wkt_first_vertex(box0.get("raw_location")) or geo.wkt_first_vertex(meta.get("raw_location"))
            if vertex:
                points.append((vertex[1], vertex[0]))
                owners.append(index)
    places = dict(zip(owners, geo.nearest_places(points)))
    out = []
    for index, (row, meta) in enumerate(zip(rows, metas)):
        dataset = row["dataset"]
        if dataset == "fmow":
            size = (row["width"], row["height"]) if row.get("width") and row.get("height") else None
            fields = fmow_fields(meta, size, (row.get("labels") or [None])[0], season_rule,
                                 place=places.get(index, {}))
        elif dataset == "bigearthnet":
            fields = bigearthnet_fields(meta, season_rule)
        else:
            fields = {}
        out.append(
            {
                "uid": row["uid"],
                "dataset": dataset,
                "img_name": row["img_name"],
                "image_path": row["image_path"],
                "meta_caption": meta_caption(dataset, fields, row["uid"], seed),
                "labels": list(row.get("labels") or []),
                "geo": _geo_json(fields),
            }
        )
    return out


def rs3_metacaptions(read_tables: list[str], out_paths: list[str], seed: int | str = 0,
                     season_rule: str = "hemisphere") -> None:
    """Meta-captions for every reader table, written to a fixed number of parts by uid hash.

    `out_paths` are the part files in part order; a part with no rows is written empty, so the
    caption jobs downstream always find their input.
    """
    if season_rule not in geo.SEASON_RULES:
        raise ValueError(f"metacaption.season_rule must be one of {geo.SEASON_RULES}, got {season_rule!r}")
    rows: list[dict] = []
    for path in read_tables:
        rows.extend(pq.read_table(path).to_pylist())
    meta_rows = rs3_meta_rows(rows, seed, season_rule)
    parts: list[list[dict]] = [[] for _ in out_paths]
    for row in meta_rows:
        parts[uid_bucket(row[UID], len(out_paths))].append(row)
    for path, part_rows in zip(out_paths, parts):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        part_rows.sort(key=lambda r: r[UID])
        pq.write_table(pa.Table.from_pylist(part_rows, schema=RS3_META_SCHEMA), path)
    log.info("meta-captions for %d rows in %d parts", len(meta_rows), len(out_paths))


# --- the PUB11 stage ------------------------------------------------------------------------

PUB11_META_SOURCES = tuple(source for source in _CLAUSES if source not in ("fmow", "bigearthnet"))

PUB11_META_SCHEMA = pa.schema(
    [
        (UID, pa.string()),
        ("source", pa.string()),
        ("meta_caption", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("geo", pa.string()),
    ]
)

# The native fields each PUB11 meta-caption reads, as `src_` columns (their JSON key in `native`).
_PUB11_NATIVE_SQL = {
    "src_latitude": "json_extract_string(native, '$.latitude')",
    "src_longitude": "json_extract_string(native, '$.longitude')",
    "src_date_taken": "json_extract_string(native, '$.date_taken')",
    "src_created_utc": "TRY_CAST(json_extract_string(native, '$.created_utc') AS DOUBLE)",
}


def pub11_meta_rows(rows: list[dict], seed: int | str = 0, season_rule: str = "hemisphere",
                    cc3m_labels: Mapping[str, list[str]] | None = None) -> list[dict]:
    """`uid, source, meta_caption, labels, geo` for PUB11 rows with `src_` columns (YFCC, CC3M,
    RedCaps; other sources get '' and '{}'). YFCC places come from one bulk lookup."""
    points, owners = [], []
    for index, row in enumerate(rows):
        if row.get("source") == "yfcc15m":
            point = geo.valid_lat_lon(row.get("src_latitude"), row.get("src_longitude"))
            if point:
                points.append(point)
                owners.append(index)
    places = dict(zip(owners, geo.nearest_places(points)))
    out = []
    for index, row in enumerate(rows):
        source = row.get("source") or ""
        fields = pub11_fields(source, row, season_rule, cc3m_labels, place=places.get(index))
        out.append(
            {
                UID: row[UID],
                "source": source,
                "meta_caption": meta_caption(source, fields, row[UID], seed),
                "labels": list(fields.get("label_list") or []),
                "geo": _geo_json({k: v for k, v in fields.items() if k not in ("label_list", "labels")}),
            }
        )
    return out


def pub11_metacaptions(final: str | Path, urldedup_parts: list[str], out_path: str | Path,
                       stats_path: str | Path | None = None, seed: int | str = 0,
                       season_rule: str = "hemisphere", cc3m_labels: str | Path | None = None,
                       threads: int = 1, memory_limit: str | None = None) -> dict:
    """Meta-captions of the kept PUB11 samples whose sources carry metadata (SPEC 4).

    The kept uids come from `final`; their native fields from the URL-dedup parts (`native`
    JSON). Writes one row per kept YFCC, CC3M and RedCaps sample (uid order), and a stats JSON of
    how many got a meta-caption and which fields; returns those stats.
    """
    if season_rule not in geo.SEASON_RULES:
        raise ValueError(f"metacaption.season_rule must be one of {geo.SEASON_RULES}, got {season_rule!r}")
    parts = "[" + ", ".join(sql_string(p) for p in urldedup_parts) + "]"
    sources = ", ".join(sql_string(s) for s in PUB11_META_SOURCES)
    natives = ", ".join(f"{sql} AS {name}" for name, sql in _PUB11_NATIVE_SQL.items())
    con = duck.connect(threads, memory_limit)
    rows = con.sql(
        f"SELECT f.uid, f.source, f.url, {natives} "
        f"FROM read_parquet({sql_string(final)}) f "
        f"LEFT JOIN (SELECT uid, native FROM read_parquet({parts}) WHERE source IN ({sources})) u ON f.uid = u.uid "
        f"WHERE f.source IN ({sources}) ORDER BY f.uid"
    ).to_arrow_table().to_pylist()
    labels: dict[str, list[str]] = {}
    if cc3m_labels:
        cc3m_urls = {(row["url"] or "").strip() for row in rows if row["source"] == "cc3m"}
        labels = read_cc3m_labels(cc3m_labels, cc3m_urls)
    meta_rows = pub11_meta_rows(rows, seed, season_rule, labels)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(meta_rows, schema=PUB11_META_SCHEMA), out_path)

    stats: dict[str, dict[str, int]] = {}
    for row in meta_rows:
        counts = stats.setdefault(row["source"], {"kept": 0, "meta_caption": 0})
        counts["kept"] += 1
        counts["meta_caption"] += bool(row["meta_caption"])
        for key in json.loads(row["geo"]):
            counts[f"with_{key}"] = counts.get(f"with_{key}", 0) + 1
        if row["labels"]:
            counts["with_labels"] = counts.get("with_labels", 0) + 1
    stats = {source: dict(sorted(counts.items())) for source, counts in sorted(stats.items())}
    if stats_path:
        Path(stats_path).parent.mkdir(parents=True, exist_ok=True)
        Path(stats_path).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    for source, counts in stats.items():
        log.info("%s: %d of %d kept samples have a meta-caption", source, counts["meta_caption"], counts["kept"])
    if cc3m_labels is None and "cc3m" in stats:
        log.info("cc3m: no labels file configured (metacaption.cc3m_labels): no CC3M meta-captions")
    return stats
