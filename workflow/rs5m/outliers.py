"""Outlier removal for PUB11: CLIP prompt score s_i, RS-detector score c_i, and the global joint threshold.

Reads dedup/kept.parquet and the download shards; writes scores/{part}.parquet (uid, clip_score,
rs_score) per part, then final.parquet (kept columns + both scores) with its drops and stats.

Threshold rule (SPEC 2.5), ties made precise: over the pooled scored rows (all parts and sources
together, N rows), "top X %" has threshold t_X = the k-th largest score with k = ceil(X/100 * N), and
a row is in the top X % when its score >= t_X. Equal scores always get the same decision, so a tie
at the threshold keeps every tied row (the kept count exceeds k only by such ties); X = 100 keeps
every row. A pair is kept when it is in the top X % of clip_score and the top Y % of rs_score.
Rows whose image could not be decoded have no scores, take no part in the quantiles and are
dropped as `undecodable_image`.
"""
from __future__ import annotations

import io
import json
import logging
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.tiny_models import TINY_CLIP_CONFIGS, is_random_weights, register_tiny_clip
from rs5m import offline
from rs5m.columns import SOURCE, UID
from rs5m.ledger import StageStats, drops_path, drops_table, stats_path, write_drops, write_stats
from rs5m.prompts import DEFAULT_MODIFIERS, DEFAULT_NOUNS, build_prompts
from rs5m.rs_detector import load_detector, resolve_device, rs_probability
from rs5m.tar_members import MemberLocation, MemberReader, locate_members

logger = logging.getLogger("rs5m.outliers")

STAGE = "outliers"
CLIP_SCORE = "clip_score"
RS_SCORE = "rs_score"
LOW_CLIP = "low_clip_score"
LOW_RS = "low_rs_score"
# One combined reason, so a pair failing both tests is counted once and the ledger adds up.
LOW_BOTH = f"{LOW_CLIP};{LOW_RS}"
UNDECODABLE = "undecodable_image"

SCORES_SCHEMA = pa.schema([(UID, pa.string()), (CLIP_SCORE, pa.float32()), (RS_SCORE, pa.float32())])

# The demo's CLIP: a tiny ViT built offline with random weights (rs5m.tiny_models).
TINY_CLIP_NAME = "rs5m-tiny-clip"


# --------------------------------------------------------------------------------------------- CLIP
def load_clip(model: str, pretrained: str | None, device: str = "cpu"):
    """(model in eval mode, image preprocess, tokenizer) for an open_clip architecture.

    `pretrained` is an open_clip tag (needs the hub or its cache), a local checkpoint file, or None
    for random weights, which only the demo should use: it is logged as a warning.
    """
    offline.setup()
    import open_clip

    if model in TINY_CLIP_CONFIGS:
        register_tiny_clip(model)
    clip, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained or None, device=device)
    if not pretrained or is_random_weights(pretrained):
        logger.warning(
            "!!! CLIP %s has RANDOM weights (no trained checkpoint): clip_score carries no "
            "meaning; use this only for the demo !!!", model
        )
    else:
        logger.info("CLIP %s with weights %s", model, pretrained)
    return clip.eval(), preprocess, open_clip.get_tokenizer(model)


def prompt_embedding(clip, tokenizer, prompts: Sequence[str], device: str = "cpu"):
    """Unit vector: the mean of the L2-normalised prompt embeddings, normalised again (SPEC 2.5)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        text = F.normalize(clip.encode_text(tokenizer(list(prompts)).to(device)).float(), dim=-1)
        return F.normalize(text.mean(dim=0), dim=-1)


def autocast_dtype(device: str, precision: str = "auto"):
    """The autocast dtype for `precision`: auto is bf16 (fp16 where bf16 is missing) on GPU, fp32 on CPU."""
    import torch

    if precision == "fp32" or (precision == "auto" and not device.startswith("cuda")):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


# ------------------------------------------------------------------------------------ image loading
class ShardImages:
    """Map-style dataset over member locations: decodes one JPEG and returns it preprocessed for
    each model (decoded once), plus whether the decode worked. Runs inside DataLoader workers."""

    def __init__(self, locations: Sequence[MemberLocation], transforms: Sequence) -> None:
        self.locations = list(locations)
        self.transforms = list(transforms)
        self.reader = MemberReader()

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, i: int):
        from PIL import Image

        ok = True
        try:
            with Image.open(io.BytesIO(self.reader.read(self.locations[i]))) as im:
                rgb = im.convert("RGB")
        except Exception:  # a broken image is recorded with its uid, not fatal for the part
            ok = False
            rgb = Image.new("RGB", (8, 8))
        return tuple(t(rgb) for t in self.transforms) + (ok,)


# ---------------------------------------------------------------------------------------- scoring
def _part_rows(kept: str | Path, part: str) -> pa.Table:
    table = pq.read_table(kept, columns=[UID, "part", "tar", "member"])
    parts = np.array([str(p) for p in table.column("part").to_pylist()])
    wanted = str(part)
    mask = (parts == wanted) | (np.char.zfill(parts, len(wanted)) == wanted)
    return table.filter(pa.array(mask))


def score_part(
    kept: str | Path,
    part: str,
    detector_weights: str | Path,
    out: str | Path,
    clip_model: str,
    clip_pretrained: str | None,
    prompt_modifiers: Sequence[str] = DEFAULT_MODIFIERS,
    prompt_nouns: Sequence[str] = DEFAULT_NOUNS,
    batch_size: int = 256,
    workers: int = 4,
    device: str = "auto",
    precision: str = "auto",
    root: str | Path = ".",
    embeddings_out: str | Path | None = None,
) -> pa.Table:
    """clip_score and rs_score for the kept uids of one download part, in kept.parquet's order.

    Images are decoded once in DataLoader workers straight from the shards and feed both models.
    With `embeddings_out`, the L2-normalised CLIP image embeddings are also saved there (float16
    `.npy`, row-aligned with the scores; NaN rows for undecodable images) for the decontamination stage.
    """
    import torch
    import torch.nn.functional as F

    rows = _part_rows(kept, part)
    uids = rows.column(UID).to_pylist()
    device = resolve_device(device)
    dtype = autocast_dtype(device, precision)
    logger.info("part %s: %d kept images, device %s, autocast %s, batch %d, %d workers",
                part, len(uids), device, dtype, batch_size, workers)

    clip, clip_preprocess, tokenizer = load_clip(clip_model, clip_pretrained, device=device)
    prompts = build_prompts(prompt_modifiers, prompt_nouns)
    text = prompt_embedding(clip, tokenizer, prompts, device=device)
    detector, detector_preprocess, rs_index, imgsz = load_detector(detector_weights, device=device)
    logger.info("%d prompts; detector %s at %d px, class %d = RS", len(prompts), detector_weights, imgsz, rs_index)
    if device.startswith("cuda"):
        clip = clip.to(memory_format=torch.channels_last)
        detector = detector.to(memory_format=torch.channels_last)

    locations = locate_members(zip(rows.column("tar").to_pylist(), rows.column("member").to_pylist()), root=root)
    dataset = ShardImages(locations, [clip_preprocess, detector_preprocess])
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=int(batch_size),
        num_workers=int(workers),
        pin_memory=device.startswith("cuda"),
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    clip_scores = np.empty(len(uids), dtype=np.float32)
    rs_scores = np.empty(len(uids), dtype=np.float32)
    embeddings = []
    started, done = time.perf_counter(), 0
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        for clip_batch, detector_batch, ok in loader:
            n = len(ok)
            image = F.normalize(clip.encode_image(clip_batch.to(device, non_blocking=True)).float(), dim=-1)
            s = (image @ text).cpu().numpy()
            c = rs_probability(detector, detector_batch.to(device, non_blocking=True), rs_index).cpu().numpy()
            bad = ~ok.numpy()
            s[bad], c[bad] = np.nan, np.nan
            if embeddings_out is not None:
                vectors = image.cpu().numpy().astype(np.float16)
                vectors[bad] = np.nan
                embeddings.append(vectors)
            clip_scores[done : done + n], rs_scores[done : done + n] = s, c
            done += n
    dataset.reader.close()
    elapsed = time.perf_counter() - started
    logger.info("part %s: scored %d images in %.1f s (%.1f images/s), %d undecodable",
                part, done, elapsed, done / max(elapsed, 1e-9), int(np.isnan(clip_scores).sum()))

    table = pa.table({UID: pa.array(uids, pa.string()), CLIP_SCORE: clip_scores, RS_SCORE: rs_scores}, schema=SCORES_SCHEMA)
    table = table.replace_schema_metadata({
        "clip_model": clip_model,
        "clip_pretrained": str(clip_pretrained),
        "detector_weights": str(detector_weights),
        "prompts": json.dumps(prompts),
        "scoring_seconds": f"{elapsed:.3f}",
    })
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    if embeddings_out is not None:
        dim = int(getattr(clip.visual, "output_dim", 0) or text.shape[-1])
        np.save(embeddings_out, np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float16))
    return table


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
    score_table = pa.concat_tables([pq.read_table(p, schema=SCORES_SCHEMA) for p in scores]) if scores else SCORES_SCHEMA.empty_table()
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
    clip_top_percent: float = 90,
    rs_top_percent: float = 80,
    thresholds_out: str | Path | None = None,
) -> dict:
    """Keep pairs in the top `clip_top_percent` % of clip_score and top `rs_top_percent` % of rs_score,
    quantiles over the pooled set; write final.parquet with its drops and per-source stats."""
    table, clip_scores, rs_scores = pooled_scores(kept, scores)
    keep, low_clip, low_rs, thresholds = joint_keep(clip_scores, rs_scores, clip_top_percent, rs_top_percent)
    thresholds.update({"clip_top_percent": clip_top_percent, "rs_top_percent": rs_top_percent,
                       "rows_in": table.num_rows, "kept": int(keep.sum())})
    logger.info("thresholds over %d pooled pairs: clip_score >= %.6g (top %s %%), rs_score >= %.6g (top %s %%); kept %d",
                thresholds["scored_rows"], thresholds["clip_score"], clip_top_percent,
                thresholds["rs_score"], rs_top_percent, thresholds["kept"])

    reasons = np.full(table.num_rows, "", dtype=object)
    reasons[low_clip & ~low_rs] = LOW_CLIP
    reasons[low_rs & ~low_clip] = LOW_RS
    reasons[low_clip & low_rs] = LOW_BOTH
    reasons[np.isnan(clip_scores) | np.isnan(rs_scores)] = UNDECODABLE

    final = table.append_column(CLIP_SCORE, pa.array(clip_scores, pa.float32()))
    final = final.append_column(RS_SCORE, pa.array(rs_scores, pa.float32()))
    final = final.replace_schema_metadata({**(table.schema.metadata or {}), b"outlier_thresholds": json.dumps(thresholds)})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(final.filter(pa.array(keep)), out)

    uids = table.column(UID).to_pylist()
    sources = table.column(SOURCE).to_pylist()
    drop_rows = []
    stats: dict[str, StageStats] = {}
    for i, source in enumerate(sources):
        entry = stats.setdefault(source, StageStats(STAGE, source))
        entry.rows_in += 1
        if keep[i]:
            entry.kept += 1
            continue
        entry.drop(reasons[i])
        drop_rows.append({
            "uid": uids[i], "source": source, "stage": STAGE, "reason": reasons[i],
            "detail": f"clip_score={clip_scores[i]:.6g} (threshold {thresholds['clip_score']:.6g}), "
                      f"rs_score={rs_scores[i]:.6g} (threshold {thresholds['rs_score']:.6g})",
        })
    write_stats(stats_path(out), stats.values())
    write_drops(drops_path(out), drops_table(drop_rows))
    if thresholds_out:
        Path(thresholds_out).write_text(json.dumps(thresholds, indent=1) + "\n")
    return thresholds
