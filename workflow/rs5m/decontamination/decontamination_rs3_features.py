"""Decontamination features of one RS3 caption part: the images' pHash and CLIP embeddings, computed once.

Reads `results/rs3/caption/{part}.parquet`; writes `results/decontamination/rs3/{part}.{parquet,npy}`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import UID
from rs5m.decontamination.matching import FEATURE_SCHEMA, image_features
from rs5m.decontamination.settings import FeatureSettings

logger = logging.getLogger(__name__)


def rs3_features(
    part: str | Path,
    out: str | Path,
    embeddings_out: str | Path,
    settings: FeatureSettings,
    workers: int,
) -> int:
    """pHash and scoring-model embedding of the kept images of one RS3 caption part (row-aligned)."""
    table = pq.read_table(part, columns=[UID, "image_path"])
    ok, hashes, vectors = image_features(table.column("image_path").to_pylist(), False, settings, workers)
    if (~ok).any():
        logger.warning("%d RS3 images unreadable here: they get no match", int((~ok).sum()))
    hashes = hashes.reshape(-1) if len(hashes) else np.zeros(0, np.int64)
    out_table = pa.table(
        {UID: table.column(UID), "phash": pa.array(hashes, pa.int64(), mask=~ok)}, schema=FEATURE_SCHEMA
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out_table, out)
    vectors = vectors.reshape(len(ok), -1) if len(ok) else vectors.reshape(0, -1)
    vectors[~ok] = np.nan
    np.save(embeddings_out, vectors.astype(np.float16))
    return table.num_rows
