"""Decontamination features of one eval set: pHash and CLIP embedding of its 8 rotations/flips, once per set.

Reads the set's images (rs5m.eval_sets); writes `results/decontamination/eval/{eval_set}.{parquet,npy}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.decontamination.matching import EVAL_SCHEMA, image_features
from rs5m.decontamination.settings import FeatureSettings
from rs5m.eval_sets import read_eval_set

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- feature jobs
def eval_set_features(
    name: str,
    paths: Sequence[str],
    fmt: str,
    out: str | Path,
    embeddings_out: str | Path,
    settings: FeatureSettings,
    workers: int,
) -> int:
    """One eval set: its images with the pHashes of their eight variants (parquet) and the
    embeddings of the eight variants (`.npy`, shape (images, 8, d)). Returns the images read."""
    eval_set = read_eval_set(name, list(paths), fmt)
    image_paths = [image.path for image in eval_set.images]
    ok, hashes, vectors = image_features(image_paths, True, settings, workers)
    images = [image for image, good in zip(eval_set.images, ok) if good]
    logger.info("eval set %s: %d images read, %d unreadable", name, len(images), int((~ok).sum()))
    table = pa.table(
        {
            "eval_set": [name] * len(images),
            "image_id": [image.image_id for image in images],
            "path": [image.path for image in images],
            "captions": [list(image.captions) for image in images],
            "phash": [list(map(int, h)) for h in hashes[ok]],
        },
        schema=EVAL_SCHEMA,
    ).replace_schema_metadata(
        {
            "clip_model": settings.outliers.clip.model,
            "clip_pretrained": str(settings.outliers.clip.pretrained),
            "missing": json.dumps(eval_set.missing[:1000]),
            "unreadable": str(int((~ok).sum())),
        }
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    np.save(embeddings_out, vectors[ok].astype(np.float16))
    return len(images)
