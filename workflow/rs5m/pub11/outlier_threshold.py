"""Outlier threshold for PUB11: keep pairs in the top X % of CLIP score and top Y % of RS score over all parts.

Reads dedup/kept.parquet and every scores/{part}.parquet; writes final.parquet (kept columns + both
scores) with its drops and per-source stats.

Threshold rule (SPEC 2.5), ties made precise: over the pooled scored rows (all parts and sources
together, N rows), "top X %" has threshold t_X = the k-th largest score with k = ceil(X/100 * N), and
a row is in the top X % when its score >= t_X. Equal scores always get the same decision, so a tie
at the threshold keeps every tied row (the kept count exceeds k only by such ties); X = 100 keeps
every row. A pair is kept when it is in the top X % of clip_score and the top Y % of rs_score.
Rows whose image could not be decoded have no scores, take no part in the quantiles and are
dropped as `undecodable_image`.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import SOURCE, UID
from rs5m.ledger import Ledger, drops_path, drops_table, stats_path, write_drops, write_stats
from rs5m.pub11.score_part import CLIP_SCORE, RS_SCORE, SCORES_SCHEMA, STAGE
from rs5m.pub11.settings import ThresholdSettings

logger = logging.getLogger(__name__)


LOW_CLIP = "low_clip_score"


LOW_RS = "low_rs_score"


# One combined reason, so a pair failing both tests is counted once and the ledger adds up.
LOW_BOTH = f"{LOW_CLIP};{LOW_RS}"


UNDECODABLE = "undecodable_image"


# -------------------------------------------------------------------------------------- threshold
def top_percent_threshold(scores: np.ndarray, percent: float) -> float:
    """t_X: the k-th largest score, k = ceil(percent/100 * N); `scores >= t_X` is the top `percent` %.

    The percentage is taken as an exact decimal (Fraction of its string) so 95 % of 20 is 19, not
    ceil(19.000000000000004) = 20.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < float(percent) <= 100:
        raise ValueError(f"a top percentage must be in (0, 100], got {percent}")
    n = len(scores)
    if n == 0:
        return math.inf
    k = math.ceil(Fraction(str(percent)) * n / 100)
    return float(np.partition(scores, n - k)[n - k])


def joint_keep(clip_scores: np.ndarray, rs_scores: np.ndarray, clip_top_percent: float, rs_top_percent: float):
    """(keep mask, low-clip mask, low-rs mask, thresholds) over pooled scores; NaN rows are neither kept nor ranked."""
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    rs_scores = np.asarray(rs_scores, dtype=np.float64)
    scored = ~(np.isnan(clip_scores) | np.isnan(rs_scores))
    clip_t = top_percent_threshold(clip_scores[scored], clip_top_percent)
    rs_t = top_percent_threshold(rs_scores[scored], rs_top_percent)
    low_clip = scored & ~(clip_scores >= clip_t)
    low_rs = scored & ~(rs_scores >= rs_t)
    keep = scored & ~low_clip & ~low_rs
    return keep, low_clip, low_rs, {"clip_score": clip_t, "rs_score": rs_t, "scored_rows": int(scored.sum())}


def pooled_scores(kept: str | Path, scores: Sequence[str | Path]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """kept.parquet and both scores aligned to its rows; every kept uid must have exactly one score row."""
    import pandas as pd

    table = pq.read_table(kept)
    score_table = (
        pa.concat_tables([pq.read_table(p, schema=SCORES_SCHEMA) for p in scores])
        if scores
        else SCORES_SCHEMA.empty_table()
    )
    score_uids = pd.Index(score_table.column(UID).to_pylist())
    if not score_uids.is_unique:
        raise ValueError(f"{int(score_uids.duplicated().sum())} uids are scored more than once across the score parts")
    positions = score_uids.get_indexer(table.column(UID).to_pylist())
    if (positions < 0).any():
        missing = np.array(table.column(UID).to_pylist())[positions < 0]
        raise ValueError(f"{len(missing)} kept uids have no score (e.g. {list(missing[:3])}): score parts are stale")
    if len(score_uids) != table.num_rows:
        raise ValueError(f"{len(score_uids) - table.num_rows} scored uids are not in {kept}: score parts are stale")
    clip_scores = score_table.column(CLIP_SCORE).to_numpy(zero_copy_only=False)[positions]
    rs_scores = score_table.column(RS_SCORE).to_numpy(zero_copy_only=False)[positions]
    return table, clip_scores, rs_scores


def apply_outlier_threshold(
    kept: str | Path,
    scores: Sequence[str | Path],
    out: str | Path,
    settings: ThresholdSettings,
    thresholds_out: str | Path | None,
) -> dict:
    """Keep pairs in the top `clip_top_percent` % of clip_score and top `rs_top_percent` % of rs_score,
    quantiles over the pooled set; write final.parquet with its drops and per-source stats."""
    clip_top_percent, rs_top_percent = settings.clip_top_percent, settings.rs_top_percent
    table, clip_scores, rs_scores = pooled_scores(kept, scores)
    keep, low_clip, low_rs, thresholds = joint_keep(clip_scores, rs_scores, clip_top_percent, rs_top_percent)
    thresholds.update(
        {
            "clip_top_percent": clip_top_percent,
            "rs_top_percent": rs_top_percent,
            "rows_in": table.num_rows,
            "kept": int(keep.sum()),
        }
    )
    logger.info(
        "thresholds over %d pooled pairs: clip_score >= %.6g (top %s %%), rs_score >= %.6g (top %s %%); kept %d",
        thresholds["scored_rows"],
        thresholds["clip_score"],
        clip_top_percent,
        thresholds["rs_score"],
        rs_top_percent,
        thresholds["kept"],
    )

    reasons = np.full(table.num_rows, "", dtype=object)
    reasons[low_clip & ~low_rs] = LOW_CLIP
    reasons[low_rs & ~low_clip] = LOW_RS
    reasons[low_clip & low_rs] = LOW_BOTH
    reasons[np.isnan(clip_scores) | np.isnan(rs_scores)] = UNDECODABLE

    final = table.append_column(CLIP_SCORE, pa.array(clip_scores, pa.float32()))
    final = final.append_column(RS_SCORE, pa.array(rs_scores, pa.float32()))
    final = final.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"outlier_thresholds": json.dumps(thresholds)}
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(final.filter(pa.array(keep)), out)

    uids = table.column(UID).to_pylist()
    sources = table.column(SOURCE).to_pylist()
    ledger = Ledger(STAGE)
    for i, source in enumerate(sources):
        if keep[i]:
            ledger.keep(source)
            continue
        ledger.drop(
            uids[i],
            source,
            reasons[i],
            f"clip_score={clip_scores[i]:.6g} (threshold {thresholds['clip_score']:.6g}), "
            f"rs_score={rs_scores[i]:.6g} (threshold {thresholds['rs_score']:.6g})",
        )
    # In the order the sources first appear (as the ledger was always written here).
    write_stats(stats_path(out), ledger.stats.values())
    write_drops(drops_path(out), drops_table(ledger.drop_rows))
    if thresholds_out:
        Path(thresholds_out).write_text(json.dumps(thresholds, indent=1) + "\n")
    return thresholds
