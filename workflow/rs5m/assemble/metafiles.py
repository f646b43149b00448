"""Assembly stage, CSV metafiles: the tables released beside the shards (SPEC 5).

Reads the final PUB11/RS3 tables and the PUB11 place-name table; writes
`results/metafiles/{pub11_train_metadata,pub11_validation_metadata,rs3_train_val_metadata,pub11_NER_geolocation_info}.csv`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from rs5m.assemble.manifest import LIST_SEPARATOR, attach_pub11_meta, pub11_img_name
from rs5m.assemble.settings import MetafileSettings
from rs5m.assemble.split import TRAIN, VAL, split_of
from rs5m.columns import UID

PUB11_COLUMNS = [
    "file_name",
    "text",
    "uid",
    "source",
    "url",
    "matched_keywords",
    "width",
    "height",
    "clip_score",
    "rs_score",
    "meta_caption",
    "labels",
]
RS3_COLUMNS = ["name", "caption", "subset", "dataset", "uid", "top_cap", "ssl_cap", "meta_caption", "labels"]
NER_COLUMNS = ["img_name", "text", "entity"]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def write_csv(path: str | Path, columns: list[str], rows: Iterable[dict]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
            count += 1
    return count


def pub11_rows(
    final: str | Path, val_fraction: float, meta: str | Path | None = None, caption_mode: str = "keep"
) -> tuple[list[str], dict[str, list[dict]]]:
    """Columns (fixed ones, then every geo field of the meta-captions, sorted) and
    {"train": rows, "val": rows} of the PUB11 metafiles, in uid order. `text` is the shard caption."""
    out: dict[str, list[dict]] = {TRAIN: [], VAL: []}
    rows = attach_pub11_meta(pq.read_table(final).to_pylist(), meta, caption_mode)
    geo_keys: set[str] = set()
    for row in sorted(rows, key=lambda r: r[UID]):
        geo = geo_fields(row.get("geo"))
        geo_keys.update(geo)
        out[split_of(row[UID], val_fraction)].append(
            dict(row, **geo, file_name=pub11_img_name(row), text=row.get("caption"))
        )
    return PUB11_COLUMNS + sorted(geo_keys), out


def geo_fields(geo_json: str | None) -> dict[str, Any]:
    """`geo` (a JSON object) flattened one level into `geo_<key>` columns."""
    if not geo_json:
        return {}
    geo = json.loads(geo_json)
    if not isinstance(geo, dict):
        return {"geo_value": geo}
    return {f"geo_{key}": value for key, value in geo.items()}


def rs3_rows(final: str | Path, val_fraction: float) -> tuple[list[str], list[dict]]:
    """Columns (fixed ones, then every geo field seen, sorted) and rows in uid order."""
    rows, geo_keys = [], set()
    for row in sorted(pq.read_table(final).to_pylist(), key=lambda r: r[UID]):
        geo = geo_fields(row.get("geo"))
        geo_keys.update(geo)
        rows.append(dict(row, **geo, name=row["img_name"], subset=split_of(row[UID], val_fraction)))
    return RS3_COLUMNS + sorted(geo_keys), rows


def ner_rows(places: str | Path, pub11_final: str | Path) -> tuple[list[str], list[dict]]:
    """The place-name table; `img_name` is rewritten to the shard name where a `uid` is given.

    Only kept PUB11 samples appear: the table describes the released dataset.
    """
    table = pq.read_table(places)
    kept = {
        row[UID]: pub11_img_name(row)
        for row in pq.read_table(pub11_final, columns=[UID, "source", "member"]).to_pylist()
    }
    extra = [c for c in table.column_names if c not in NER_COLUMNS and c != UID]
    rows = []
    for row in table.to_pylist():
        if UID in row:
            if row[UID] not in kept:
                continue
            row["img_name"] = kept[row[UID]]
        rows.append(row)
    rows.sort(key=lambda r: (str(r.get("img_name")), str(r.get("entity"))))
    return NER_COLUMNS + extra, rows


def write_metafiles(
    pub11_final: str | Path | None,
    rs3_final: str | Path | None,
    places: str | Path | None,
    out_dir: str | Path,
    pub11_meta: str | Path | None,
    settings: MetafileSettings,
) -> dict[str, int]:
    """Write the four CSVs, or those of the subsets given (None: a subset this build does not hold);
    returns {file name: rows}."""
    out_dir = Path(out_dir)
    val_fraction, pub11_caption = settings.split.val_fraction, settings.metacaption.pub11_caption
    counts = {}
    if pub11_final is not None:
        columns, pub11 = pub11_rows(pub11_final, val_fraction, pub11_meta, pub11_caption)
        counts["pub11_train_metadata.csv"] = write_csv(out_dir / "pub11_train_metadata.csv", columns, pub11[TRAIN])
        counts["pub11_validation_metadata.csv"] = write_csv(
            out_dir / "pub11_validation_metadata.csv", columns, pub11[VAL]
        )
    if rs3_final is not None:
        columns, rows = rs3_rows(rs3_final, val_fraction)
        counts["rs3_train_val_metadata.csv"] = write_csv(out_dir / "rs3_train_val_metadata.csv", columns, rows)
    if pub11_final is not None:
        columns, rows = ner_rows(places, pub11_final)
        counts["pub11_NER_geolocation_info.csv"] = write_csv(out_dir / "pub11_NER_geolocation_info.csv", columns, rows)
    return counts
