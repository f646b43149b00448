"""PUB11 meta-captions (SPEC 4): place, date and season of YFCC, CC3M labels and RedCaps dates.

Reads `results/pub11/final.parquet`, the URL-dedup parts' native fields and the CC3M labels file;
writes `results/pub11/metacaption.parquet` (`uid, source, meta_caption, labels, geo`) and its counts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m import duck, geo
from rs5m.columns import UID
from rs5m.metacaption import CLAUSES, date_fields, geo_json, meta_caption, parse_float, place_name
from rs5m.pub11.sources import sql_string
from rs5m.settings import MetacaptionSettings
from rs5m.tables import PUB11_META_SCHEMA

log = logging.getLogger(__name__)

# The native fields each meta-caption needs, from the URL-dedup parts' `native` JSON.
PUB11_NATIVE_SQL = {
    "src_latitude": "json_extract_string(native, '$.latitude')",
    "src_longitude": "json_extract_string(native, '$.longitude')",
    "src_date_taken": "json_extract_string(native, '$.date_taken')",
    "src_created_utc": "TRY_CAST(json_extract_string(native, '$.created_utc') AS DOUBLE)",
}


def cc3m_select_labels(labels: list[str], scores: list[float], threshold: float = 0.9, top: int = 3) -> list[str]:
    """SPEC 4 rule: >= `top` tags with prob >= threshold -> the first `top`; else all of them;
    else the single most probable tag."""
    pairs = [(str(label).strip(), parse_float(score)) for label, score in zip(labels, scores)]
    pairs = [(label, score) for label, score in pairs if label and score is not None]
    if not pairs:
        return []
    confident = [label for label, score in pairs if score >= threshold]
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


def pub11_fields(
    source: str,
    row: Mapping[str, Any],
    season_rule: str,
    cc3m_labels: Mapping[str, list[str]] | None,
    place: Mapping[str, Any] | None = None,
) -> dict:
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
            "place": place_name((place or {}).get("city"), (place or {}).get("country")),
        }
        fields.update(date_fields(row.get("src_date_taken"), fields["lat"], season_rule))
        return fields
    if source == "cc3m":
        labels = (cc3m_labels or {}).get((row.get("url") or "").strip(), [])
        return {"labels": ", ".join(labels) or None, "label_list": labels}
    if source == "redcaps":
        # created_utc has no place: the season follows the configured rule with no latitude.
        return date_fields(row.get("src_created_utc"), None, season_rule)
    return {}


PUB11_META_SOURCES = tuple(source for source in CLAUSES if source not in ("fmow", "bigearthnet"))


def pub11_meta_rows(
    rows: list[dict],
    seed: int | str,
    season_rule: str,
    cc3m_labels: Mapping[str, list[str]] | None,
) -> list[dict]:
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
                "geo": geo_json({k: v for k, v in fields.items() if k not in ("label_list", "labels")}),
            }
        )
    return out


def pub11_metacaptions(
    final: str | Path,
    urldedup_parts: list[str],
    out_path: str | Path,
    stats_path: str | Path | None,
    settings: MetacaptionSettings,
    cc3m_labels: str | Path | None,
    threads: int,
    memory_limit: str | None,
) -> dict:
    """Meta-captions of the kept PUB11 samples whose sources carry metadata (SPEC 4).

    The kept uids come from `final`; their native fields from the URL-dedup parts (`native`
    JSON). Writes one row per kept YFCC, CC3M and RedCaps sample (uid order), and a stats JSON of
    how many got a meta-caption and which fields; returns those stats.
    """
    seed, season_rule = settings.seed, settings.season_rule
    if season_rule not in geo.SEASON_RULES:
        raise ValueError(f"metacaption.season_rule must be one of {geo.SEASON_RULES}, got {season_rule!r}")
    parts = "[" + ", ".join(sql_string(p) for p in urldedup_parts) + "]"
    sources = ", ".join(sql_string(s) for s in PUB11_META_SOURCES)
    natives = ", ".join(f"{sql} AS {name}" for name, sql in PUB11_NATIVE_SQL.items())
    con = duck.connect(threads, memory_limit)
    rows = (
        con.sql(
            f"SELECT f.uid, f.source, f.url, {natives} "
            f"FROM read_parquet({sql_string(final)}) f "
            f"LEFT JOIN (SELECT uid, native FROM read_parquet({parts}) WHERE source IN ({sources})) u ON f.uid = u.uid "
            f"WHERE f.source IN ({sources}) ORDER BY f.uid"
        )
        .to_arrow_table()
        .to_pylist()
    )
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
