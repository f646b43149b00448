"""Outlier scores for PUB11, one job per download part: CLIP prompt score s_i and RS-detector score c_i.

Reads dedup/kept.parquet and the part's download shards; writes scores/{part}.parquet (uid,
clip_score, rs_score). The global joint threshold over all parts is rs5m.pub11.outlier_threshold.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import UID
from rs5m.models import autocast_dtype, load_clip, resolve_device
from rs5m.pub11.prompts import build_prompts
from rs5m.pub11.settings import ScoringSettings
from rs5m.pub11.train_rs_detector import load_detector, rs_probability
from rs5m.reduced_decode import input_side
from rs5m.tar import MemberLocation, MemberReader, locate_members

logger = logging.getLogger("rs5m.pub11.score_part")

STAGE = "outliers"
CLIP_SCORE = "clip_score"
RS_SCORE = "rs_score"

SCORES_SCHEMA = pa.schema([(UID, pa.string()), (CLIP_SCORE, pa.float32()), (RS_SCORE, pa.float32())])


# --------------------------------------------------------------------------------------------- CLIP
def prompt_embedding(clip, tokenizer, prompts: Sequence[str], device: str = "cpu"):
    """Unit vector: the mean of the L2-normalised prompt embeddings, normalised again (SPEC 2.5)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        text = F.normalize(clip.encode_text(tokenizer(list(prompts)).to(device)).float(), dim=-1)
        return F.normalize(text.mean(dim=0), dim=-1)


# ------------------------------------------------------------------------------------ image loading
class ShardImages:
    """Map-style dataset over member locations: decodes one JPEG and returns it preprocessed for
    each model (decoded once), plus whether the decode worked. Runs inside DataLoader workers."""

    def __init__(self, locations: Sequence[MemberLocation], transforms: Sequence, side: int | None = None) -> None:
        self.locations = list(locations)
        self.transforms = list(transforms)
        self.side = side  # reduced-scale JPEG decode down to this input side (rs5m.reduced_decode)
        self.reader = MemberReader()

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, i: int):
        from PIL import Image

        from rs5m.reduced_decode import open_rgb

        ok = True
        try:
            rgb = open_rgb(self.reader.read(self.locations[i]), self.side)
        except Exception:  # noqa: BLE001 - a broken image is recorded with its uid, not fatal for the part
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
    settings: ScoringSettings,
    workers: int,
    embeddings_out: str | Path | None,
    root: str | Path = ".",  # not config: the run folder that kept.parquet's `tar` paths are relative to
) -> pa.Table:
    """clip_score and rs_score for the kept uids of one download part, in kept.parquet's order.

    Images are decoded once in DataLoader workers straight from the shards and feed both models;
    with `reduced_decode` a large JPEG is decoded at the DCT scale the larger model input needs.
    With `embeddings_out`, the L2-normalised CLIP image embeddings are also saved there (float16
    `.npy`, row-aligned with the scores; NaN rows for undecodable images) for the decontamination stage.
    """
    import torch
    import torch.nn.functional as F

    rows = _part_rows(kept, part)
    uids = rows.column(UID).to_pylist()
    device = resolve_device(settings.device)
    dtype = autocast_dtype(device, settings.precision)
    batch_size = settings.batch_size
    logger.info(
        "part %s: %d kept images, device %s, autocast %s, batch %d, %d workers",
        part,
        len(uids),
        device,
        dtype,
        batch_size,
        workers,
    )

    loaded = load_clip(settings.clip.model, settings.clip.pretrained, None, device)
    clip, clip_preprocess, tokenizer = loaded.model, loaded.preprocess, loaded.tokenizer
    prompts = build_prompts(settings.prompts.modifiers, settings.prompts.nouns)
    text = prompt_embedding(clip, tokenizer, prompts, device=device)
    detector, detector_preprocess, rs_index, imgsz = load_detector(detector_weights, device=device)
    logger.info("%d prompts; detector %s at %d px, class %d = RS", len(prompts), detector_weights, imgsz, rs_index)
    if device.startswith("cuda"):
        clip = clip.to(memory_format=torch.channels_last)
        detector = detector.to(memory_format=torch.channels_last)

    locations = locate_members(zip(rows.column("tar").to_pylist(), rows.column("member").to_pylist()), root=root)
    side = input_side(clip.visual.image_size, imgsz) if settings.reduced_decode else None
    dataset = ShardImages(locations, [clip_preprocess, detector_preprocess], side)
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
    logger.info(
        "part %s: scored %d images in %.1f s (%.1f images/s), %d undecodable",
        part,
        done,
        elapsed,
        done / max(elapsed, 1e-9),
        int(np.isnan(clip_scores).sum()),
    )

    table = pa.table(
        {UID: pa.array(uids, pa.string()), CLIP_SCORE: clip_scores, RS_SCORE: rs_scores}, schema=SCORES_SCHEMA
    )
    table = table.replace_schema_metadata(
        {
            "clip_model": settings.clip.model,
            "clip_pretrained": str(settings.clip.pretrained),
            "detector_weights": str(detector_weights),
            "prompts": json.dumps(prompts),
            "scoring_seconds": f"{elapsed:.3f}",
        }
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    if embeddings_out is not None:
        dim = int(getattr(clip.visual, "output_dim", 0) or text.shape[-1])
        np.save(embeddings_out, np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float16))
    return table
