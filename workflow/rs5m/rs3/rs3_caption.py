"""RS3 captioning (SPEC 3): BLIP-2 candidates, two-stage CLIP ranking, rotation-invariant pick.

Reads a meta-caption part (`results/rs3/metacaption/{part}.parquet`) and writes the captioned
part, every candidate with its scores (`{part}.candidates.parquet`) and the ledger files.

Size: candidate generation, the two CLIP rankings, the rotation pick and the part's loop are the
one SPEC 3 procedure; the final table is rs5m.rs3.rs3_final.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m import offline
from rs5m.ledger import Ledger, StageStats, drops_path, stats_path
from rs5m.metacaption import sample_rng
from rs5m.models import is_random_weights, load_clip, resolve_device
from rs5m.reduced_decode import input_side, open_rgb
from rs5m.rs3.settings import CaptionSettings
from rs5m.tables import RS3_CAPTION_SCHEMA

log = logging.getLogger(__name__)

STAGE = "rs3_caption"

CAPTION_SCHEMA = RS3_CAPTION_SCHEMA  # the meta-caption table + the three captions and the choice (rs5m.tables)

CANDIDATE_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("candidate", pa.int16()),
        ("text", pa.string()),
        ("clip_a_score", pa.float32()),
        ("clip_a_rank", pa.int16()),
        ("clip_b_score", pa.float32()),
        ("clip_b_rank", pa.int16()),
        ("rotation_variance", pa.float32()),
        ("is_top_cap", pa.bool_()),
        ("is_ssl_cap", pa.bool_()),
    ]
)


# --- selection: pure functions over embeddings -----------------------------------------------


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cosine(image: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """cos(image, text) for one image embedding [D] and texts [N, D] -> [N]."""
    return _normalise(texts) @ _normalise(image)


def top_indices(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` highest scores, best first; ties go to the earlier candidate."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[: min(keep, len(scores))]


def rotation_variance(rotated_images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Variance over angles of cos(text, rotated image): images [R, D], texts [K, D] -> [K]."""
    similarities = _normalise(rotated_images) @ _normalise(texts).T  # [R, K]
    return similarities.var(axis=0)


@dataclass
class Selection:
    """The outcome of ranking one image's candidates (indices into the candidate list)."""

    clip_a_scores: np.ndarray
    kept_a: np.ndarray
    clip_b_scores: np.ndarray  # NaN for candidates CLIP A dropped
    kept_b: np.ndarray
    variances: np.ndarray  # NaN outside kept_b
    top: int
    ssl: int


def select_candidates(
    image_a: np.ndarray,
    texts_a: np.ndarray,
    image_b: np.ndarray,
    texts_b: np.ndarray,
    rotated: np.ndarray,
    keep_a: int = 10,
    keep_b: int = 5,
    texts_rotated: np.ndarray | None = None,
) -> Selection:
    """SPEC 3 selection: CLIP A keeps `keep_a`, CLIP B re-ranks those and keeps `keep_b`;
    top = CLIP B's rank 1; ssl = the kept candidate whose similarity to the rotated images
    (`rotated`: embeddings of the image at every angle) varies least.

    `texts_rotated` are the candidates in the space of `rotated` (default: texts_b, i.e. the
    rotations were embedded by CLIP B). texts_b only needs rows for the candidates CLIP A keeps.
    """
    count = len(texts_a)
    scores_a = cosine(image_a, texts_a)
    kept_a = top_indices(scores_a, keep_a)
    scores_b = np.full(count, np.nan)
    scores_b[kept_a] = cosine(image_b, np.asarray(texts_b)[kept_a])
    kept_b = kept_a[top_indices(scores_b[kept_a], keep_b)]
    variances = np.full(count, np.nan)
    texts_rotated = np.asarray(texts_b if texts_rotated is None else texts_rotated)
    variances[kept_b] = rotation_variance(rotated, texts_rotated[kept_b])
    # Ties in variance go to the better CLIP B rank (kept_b is in rank order).
    ssl = int(kept_b[int(np.argmin(variances[kept_b]))])
    return Selection(scores_a, kept_a, scores_b, kept_b, variances, int(kept_b[0]), ssl)


def final_caption(meta_caption: str | None, top_cap: str, ssl_cap: str, uid: str, seed: int | str) -> tuple[str, str]:
    """meta-caption + " " + a seeded choice of top_cap / ssl_cap -> (caption, which one)."""
    choice = sample_rng(seed, uid, "final_caption").choice(("top_cap", "ssl_cap"))
    picked = top_cap if choice == "top_cap" else ssl_cap
    caption = " ".join(part for part in ((meta_caption or "").strip(), picked.strip()) if part)
    return caption, choice


def rotations(image: Image.Image, count: int, step: float) -> list[Image.Image]:
    """The image at `count` angles `step` degrees apart, starting at 0 (same size, black corners)."""
    return [image if i == 0 else image.rotate(i * step, resample=Image.BILINEAR) for i in range(count)]


# --- models ----------------------------------------------------------------------------------


def load_blip2(model: str, lora: str | None, device: str, dtype: str):
    """(processor, model) from a hub name or local folder; an optional peft LoRA adapter is
    merged into the weights. fp16 on GPU, fp32 on CPU unless `dtype` says otherwise."""
    import torch
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    offline.setup()
    device = resolve_device(device)
    if dtype == "auto":
        torch_dtype = torch.float16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    if Path(model).exists() and is_random_weights(model):
        log.warning("BLIP-2 %s has RANDOM WEIGHTS (a tiny test model): its captions are noise", model)
    processor = Blip2Processor.from_pretrained(model)
    network = Blip2ForConditionalGeneration.from_pretrained(model, dtype=torch_dtype)
    if lora:
        from peft import PeftModel

        log.info("applying LoRA adapter %s", lora)
        network = PeftModel.from_pretrained(network, lora).merge_and_unload()
    network.to(device).eval()
    log.info("BLIP-2 %s on %s as %s", model, device, torch_dtype)
    return processor, network


def generate_candidates(
    processor,
    model,
    images: Sequence[Image.Image],
    num_candidates: int,
    top_k: int,
    top_p: float,
    max_length: int,
    seed: int | None = None,
) -> list[list[str]]:
    """Nucleus-sampled captions, `num_candidates` per image, no text prompt (SPEC 3)."""
    import torch

    if not images:
        return []
    inputs = processor(images=list(images), return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(model.device, dtype=next(model.parameters()).dtype)
    generator_state = None
    if seed is not None:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    try:
        with torch.inference_mode():
            output = model.generate(
                pixel_values=pixel_values,
                do_sample=True,
                top_k=top_k,
                top_p=top_p,
                max_length=max_length,
                num_return_sequences=num_candidates,
            )
    finally:
        if generator_state is not None:
            torch.random.set_rng_state(generator_state)
    texts = [t.strip() for t in processor.batch_decode(output, skip_special_tokens=True)]
    # generate() repeats each image num_candidates times in a row.
    return [texts[i * num_candidates : (i + 1) * num_candidates] for i in range(len(images))]


class ClipScorer:
    """An open_clip model that returns L2-normalised image and text embeddings as numpy."""

    def __init__(self, model: str, pretrained: str | None, device: str, batch_size: int = 256):
        import torch

        self.device = resolve_device(device)
        precision = "fp16" if self.device.startswith("cuda") else "fp32"
        loaded = load_clip(model, pretrained, None, self.device, weights_precision=precision)
        self.model, self.preprocess, self.tokenizer = loaded.model, loaded.preprocess, loaded.tokenizer
        self.batch_size = batch_size
        self.name = model
        self._torch = torch

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        torch = self._torch
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + self.batch_size]])
            with torch.inference_mode():
                features = self.model.encode_image(batch.to(self.device, dtype=next(self.model.parameters()).dtype))
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
            with torch.inference_mode():
                features = self.model.encode_text(tokens)
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


# --- the stage -------------------------------------------------------------------------------


def _batch_seed(seed: int | str, uids: Sequence[str]) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{uids[0] if uids else ''}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def caption_images(
    images: Sequence[Image.Image],
    uids: Sequence[str],
    processor,
    blip2,
    clip_a: ClipScorer,
    clip_b: ClipScorer,
    settings: CaptionSettings,
):
    """Candidates and selection for one batch of images -> (list of candidate lists, selections)."""
    num_candidates = settings.num_candidates
    candidates = generate_candidates(
        processor,
        blip2,
        images,
        num_candidates,
        settings.top_k,
        settings.top_p,
        settings.max_length,
        seed=_batch_seed(settings.seed, uids),
    )
    flat = [text for group in candidates for text in group]
    images_a = clip_a.encode_images(images)
    texts_a = clip_a.encode_texts(flat).reshape(len(images), num_candidates, -1)
    rotated = [
        angle
        for image in images
        for angle in rotations(image, settings.rotations.count, settings.rotations.step_degrees)
    ]
    rotation_scorer = clip_b if settings.rotations.model == "clip_b" else clip_a
    rotated_embeddings = rotation_scorer.encode_images(rotated).reshape(len(images), settings.rotations.count, -1)
    images_b = clip_b.encode_images(images) if rotation_scorer is not clip_b else rotated_embeddings[:, 0]
    # CLIP B only embeds the candidates CLIP A keeps, in one batch for all images.
    kept_a = [top_indices(cosine(images_a[i], texts_a[i]), settings.clip_a.keep) for i in range(len(images))]
    kept_texts = [candidates[i][j] for i in range(len(images)) for j in kept_a[i]]
    kept_b_embeddings = clip_b.encode_texts(kept_texts).reshape(len(images), len(kept_a[0]), -1)
    selections = []
    for index in range(len(images)):
        texts_b = np.full((num_candidates, images_b.shape[-1]), np.nan)
        texts_b[kept_a[index]] = kept_b_embeddings[index]
        selections.append(
            select_candidates(
                images_a[index],
                texts_a[index],
                images_b[index],
                texts_b,
                rotated_embeddings[index],
                settings.clip_a.keep,
                settings.clip_b.keep,
                texts_rotated=None if rotation_scorer is clip_b else texts_a[index],
            )
        )
    return candidates, selections


def _load_image(path: str, side: int | None = None) -> Image.Image:
    return open_rgb(path, side)


def _candidate_rows(uid: str, texts: list[str], selection: Selection) -> list[dict]:
    rank_a = {int(i): r + 1 for r, i in enumerate(selection.kept_a)}
    rank_b = {int(i): r + 1 for r, i in enumerate(selection.kept_b)}
    rows = []
    for index, text in enumerate(texts):
        score_b, variance = selection.clip_b_scores[index], selection.variances[index]
        rows.append(
            {
                "uid": uid,
                "candidate": index,
                "text": text,
                "clip_a_score": float(selection.clip_a_scores[index]),
                "clip_a_rank": rank_a.get(index),
                "clip_b_score": None if np.isnan(score_b) else float(score_b),
                "clip_b_rank": rank_b.get(index),
                "rotation_variance": None if np.isnan(variance) else float(variance),
                "is_top_cap": index == selection.top,
                "is_ssl_cap": index == selection.ssl,
            }
        )
    return rows


def caption_part(
    in_path: str | Path,
    out_path: str | Path,
    candidates_path: str | Path,
    settings: CaptionSettings,
) -> list[StageStats]:
    """Caption every image of one meta-caption part (one GPU job).

    An image that cannot be decoded, or whose every kept candidate is empty, is dropped with a
    reason; all 20 candidates of the others are written with their scores. With `reduced_decode`
    a large JPEG is decoded at the DCT scale the largest model input (BLIP-2, CLIP A, CLIP B) needs.
    """
    keep_a, keep_b, num_candidates = settings.clip_a.keep, settings.clip_b.keep, settings.num_candidates
    if not 0 < keep_b <= keep_a <= num_candidates:
        raise ValueError(f"need 0 < keep_b ({keep_b}) <= keep_a ({keep_a}) <= num_candidates ({num_candidates})")
    if settings.rotations.model not in ("clip_a", "clip_b"):
        raise ValueError(f"caption.rotations.model must be clip_a or clip_b, got {settings.rotations.model!r}")
    blip2, device, batch_size = settings.blip2, settings.device, settings.batch_size
    rows = pq.read_table(in_path).to_pylist()
    ledger = Ledger(STAGE)
    out_rows: list[dict] = []
    candidate_rows: list[dict] = []
    if rows:
        processor, blip2_model = load_blip2(blip2.model, blip2.lora, device, blip2.dtype)
        scorer_a = ClipScorer(settings.clip_a.model, settings.clip_a.pretrained, device)
        scorer_b = ClipScorer(settings.clip_b.model, settings.clip_b.pretrained, device)
        side = None
        if settings.reduced_decode:
            side = input_side(
                processor.image_processor.size, scorer_a.model.visual.image_size, scorer_b.model.visual.image_size
            )

    def drop(row: dict, reason: str, detail: str) -> None:
        ledger.drop(row["uid"], row["dataset"], reason, detail)

    for start in range(0, len(rows), batch_size):
        batch, images = [], []
        for row in rows[start : start + batch_size]:
            try:
                images.append(_load_image(row["image_path"], side))
            except Exception as error:  # noqa: BLE001 - any decode error is this image's drop reason
                drop(row, "unreadable_image", f"{row['image_path']}: {error}")
                continue
            batch.append(row)
        if not batch:
            continue
        candidates, selections = caption_images(
            images,
            [r["uid"] for r in batch],
            processor,
            blip2_model,
            scorer_a,
            scorer_b,
            settings,
        )
        for row, texts, selection in zip(batch, candidates, selections):
            candidate_rows.extend(_candidate_rows(row["uid"], texts, selection))
            top_cap, ssl_cap = texts[selection.top], texts[selection.ssl]
            if not top_cap and not ssl_cap:
                drop(row, "empty_caption", "every kept candidate was empty")
                continue
            caption, choice = final_caption(
                row.get("meta_caption"), top_cap or ssl_cap, ssl_cap or top_cap, row["uid"], settings.seed
            )
            out_rows.append(
                {
                    **{k: row.get(k) for k in CAPTION_SCHEMA.names},
                    "caption": caption,
                    "top_cap": top_cap,
                    "ssl_cap": ssl_cap,
                    "caption_choice": choice,
                }
            )
            ledger.keep(row["dataset"])
        log.info("captioned %d / %d images", min(start + batch_size, len(rows)), len(rows))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(out_rows, schema=CAPTION_SCHEMA), out_path)
    pq.write_table(pa.Table.from_pylist(candidate_rows, schema=CANDIDATE_SCHEMA), candidates_path)
    return ledger.write(stats_path(out_path), drops_path(out_path))
