"""CLIP models of the evaluation stage: loading (architecture + hub tag or local checkpoint, then an
optional state dict on top) and embedding images and texts.

A named checkpoint loads as the released GeoRSCLIP checkpoints do (their README):
`open_clip.create_model_and_transforms(<base>, pretrained=<base tag>)`, then
`model.load_state_dict(torch.load(ckpt), strict=False)`; the missing and unexpected keys are
reported, since a checkpoint that matches no key would silently evaluate the base model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from rs5m import offline
from rs5m.evaluation.metrics import normalize
from rs5m.models import is_random_weights, register_clip_config

logger = logging.getLogger("rs5m.evaluation.clip_models")


@dataclass
class LoadedClip:
    model: object
    preprocess: object
    tokenizer: object
    device: str
    random_weights: bool
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def checkpoint_state_dict(path: str) -> dict:
    """The model weights of a checkpoint file: a bare state dict, or one under `state_dict` (an
    open_clip training checkpoint), with DataParallel/DDP's `module.` prefix removed."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def load_clip(model: str, pretrained: str | None, checkpoint: str | None, device: str) -> LoadedClip:
    """An open_clip model in eval mode with `pretrained` weights, then `checkpoint` (strict=False) on top."""
    offline.setup()
    import open_clip

    device = resolve_device(device)
    register_clip_config(model, pretrained)
    clip, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained or None)
    missing: list[str] = []
    unexpected: list[str] = []
    if checkpoint:
        result = clip.load_state_dict(checkpoint_state_dict(checkpoint), strict=False)
        missing, unexpected = sorted(result.missing_keys), sorted(result.unexpected_keys)
        logger.info(
            "checkpoint %s on %s: %d missing keys %s, %d unexpected keys %s",
            checkpoint,
            model,
            len(missing),
            missing[:10],
            len(unexpected),
            unexpected[:10],
        )
        total = len(clip.state_dict())
        if len(missing) == total:
            raise ValueError(f"checkpoint {checkpoint}: none of its keys belongs to {model}")
    random_weights = (not pretrained or is_random_weights(pretrained)) and (
        not checkpoint or is_random_weights(checkpoint)
    )
    if random_weights:
        logger.warning("!!! CLIP %s has RANDOM weights: its numbers say nothing about a dataset !!!", model)
    return LoadedClip(
        clip.to(device).eval(), preprocess, open_clip.get_tokenizer(model), device, random_weights, missing, unexpected
    )


class _ImageFiles:
    def __init__(self, paths, preprocess):
        self.paths, self.preprocess = paths, preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return self.preprocess(image.convert("RGB"))


def _autocast(clip: LoadedClip, precision: str):
    import contextlib

    import torch

    if clip.device == "cpu" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:  # auto
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def embed_images(clip: LoadedClip, paths: list[str], batch_size: int, workers: int, precision: str) -> np.ndarray:
    """L2-normalised image embeddings [images, dim] (float32), in the order of `paths`."""
    import torch

    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, clip.preprocess), batch_size=batch_size, num_workers=workers, shuffle=False
    )
    out = []
    with torch.inference_mode(), _autocast(clip, precision):
        for batch in loader:
            out.append(clip.model.encode_image(batch.to(clip.device)).float().cpu().numpy())
    return normalize(np.concatenate(out))


def embed_texts(clip: LoadedClip, texts: list[str], batch_size: int, precision: str) -> np.ndarray:
    """L2-normalised text embeddings [texts, dim] (float32)."""
    import torch

    out = []
    with torch.inference_mode(), _autocast(clip, precision):
        for start in range(0, len(texts), batch_size):
            tokens = clip.tokenizer(texts[start : start + batch_size]).to(clip.device)
            out.append(clip.model.encode_text(tokens).float().cpu().numpy())
    return normalize(np.concatenate(out))
