"""RS3 meta-captions (SPEC 4), one job for every reader table: labels and geo fields as a sentence.

Reads the RS3 reader tables (`results/rs3/read/*.parquet`); writes a fixed number of parts by uid
hash with `uid, meta_caption, labels, geo` beside the reader columns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m import geo
from rs5m.columns import UID, uid_bucket
from rs5m.metacaption import (
    _labels_text,
    bigearthnet_fields,
    compose,
    date_fields,
    fmow_fields,
    geo_json,
    meta_caption,
    parse_float,
    place_name,
    sample_rng,
)
from rs5m.settings import MetacaptionSettings
from rs5m.tables import RS3_META_SCHEMA

log = logging.getLogger(__name__)

# Labelled RS archives of any kind (rs3.datasets entries with a `format`, rs5m.rs3.rs3_read_archive):
# a clause per field group, so whichever fields a sample has make its sentence.
ARCHIVE_CLAUSES: tuple[tuple[str, ...], ...] = (
    (
        "a {sensor} image[ from {season}] labelled {labels}",
        "a remote sensing image[ taken in {season}] showing {labels}",
        "an overhead view[ from {season}] classified as {labels}",
        "a {sensor} image[ from {season}]",
        "a remote sensing image taken in {season}",
    ),
    (
        "it was taken over {place}",
        "the scene lies in {place}",
        "its location is {place}",
    ),
    (
        "the ground sample distance is {gsd}",
        "each pixel covers about {gsd} on the ground",
    ),
    (
        "it was acquired on {date}",
        "the acquisition date is {date}",
    ),
)


def archive_fields(meta: dict, labels: list[str], season_rule: str, place: dict) -> dict:
    """Caption fields of one archive sample: labels, sensor, place (the `country` field over the
    reverse-geocoded place's), gsd, date and season."""
    latitude, longitude = parse_float(meta.get("lat")), parse_float(meta.get("lon"))
    gsd = parse_float(meta.get("gsd"))
    country = str(meta["country"]).strip() if meta.get("country") else place.get("country")
    fields = {
        "lat": latitude,
        "lon": longitude,
        "labels": _labels_text(labels),
        "sensor": str(meta["sensor"]).strip() or None if meta.get("sensor") else None,
        "city": place.get("city"),
        "country": country,
        "place": place_name(place.get("city"), country),
        "gsd": None if gsd is None else f"{gsd:g} m",
    }
    fields.update(date_fields(meta.get("date"), latitude, season_rule))
    return fields


def geo_point(meta: dict) -> tuple[float | None, float | None]:
    """(lat, lon) of an archive sample, when both are numbers in range."""
    try:
        lat, lon = float(meta.get("lat")), float(meta.get("lon"))
    except (TypeError, ValueError):
        return None, None
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else (None, None)


def rs3_meta_rows(rows: list[dict], seed: int | str, season_rule: str) -> list[dict]:
    """Meta-caption, labels and geo for reader rows (`uid, dataset, img_name, image_path, labels,
    meta` with `meta` a JSON string). fMoW places are reverse-geocoded in one bulk lookup."""
    metas = []
    for row in rows:
        try:
            meta = json.loads(row.get("meta") or "{}")
        except json.JSONDecodeError:
            meta = {}
        metas.append(meta if isinstance(meta, dict) else {})
    # One KD-tree query for every fMoW vertex (and archive position) instead of one per image.
    points, owners = [], []
    for index, (row, meta) in enumerate(zip(rows, metas)):
        if meta.get("archive"):
            lat, lon = geo_point(meta)
            if lat is not None:
                points.append((lat, lon))
                owners.append(index)
        elif row["dataset"] == "fmow":
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
            fields = fmow_fields(
                meta, size, (row.get("labels") or [None])[0], season_rule=season_rule, place=places.get(index, {})
            )
        elif dataset == "bigearthnet":
            fields = bigearthnet_fields(meta, season_rule)
        elif meta.get("archive"):
            fields = archive_fields(meta, row.get("labels") or [], season_rule, places.get(index, {}))
        else:
            fields = {}
        out.append(
            {
                "uid": row["uid"],
                "dataset": dataset,
                "img_name": row["img_name"],
                "image_path": row["image_path"],
                "meta_caption": compose(ARCHIVE_CLAUSES, fields, sample_rng(seed, row["uid"]))
                if meta.get("archive")
                else meta_caption(dataset, fields, row["uid"], seed),
                "labels": list(row.get("labels") or []),
                "geo": geo_json(fields),
            }
        )
    return out


def rs3_metacaptions(read_tables: list[str], out_paths: list[str], settings: MetacaptionSettings) -> None:
    """Meta-captions for every reader table, written to a fixed number of parts by uid hash.

    `out_paths` are the part files in part order; a part with no rows is written empty, so the
    caption jobs downstream always find their input.
    """
    seed, season_rule = settings.seed, settings.season_rule
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
