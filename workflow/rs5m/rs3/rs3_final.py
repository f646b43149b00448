"""RS3 final table: the captioned parts concatenated into `results/rs3/final.parquet`.

Reads `results/rs3/caption/{part}.parquet`; writes the contract columns first, sorted by dataset and image name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.rs3.rs3_caption import CAPTION_SCHEMA

log = logging.getLogger(__name__)


FINAL_COLUMNS = (
    "uid",
    "dataset",
    "img_name",
    "image_path",
    "caption",
    "top_cap",
    "ssl_cap",
    "meta_caption",
    "labels",
    "geo",
)


def collect_final(part_paths: Sequence[str | Path], out_path: str | Path) -> int:
    """Concatenate the captioned parts into `results/rs3/final.parquet` (contract columns first)."""
    tables = [pq.read_table(p) for p in part_paths]
    table = pa.concat_tables(tables) if tables else CAPTION_SCHEMA.empty_table()
    names = list(FINAL_COLUMNS) + [n for n in table.column_names if n not in FINAL_COLUMNS]
    table = table.select(names).sort_by([("dataset", "ascending"), ("img_name", "ascending")])
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    log.info("RS3 final: %d rows", table.num_rows)
    return table.num_rows
