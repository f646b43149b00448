"""CLIP models of the evaluation stage: embedding images and texts with a model that
rs5m.models.load_clip loaded.

A named checkpoint loads as the released GeoRSCLIP checkpoints do (their README):
`open_clip.create_model_and_transforms(<base>, pretrained=<base tag>)`, then
`model.load_state_dict(torch.load(ckpt), strict=False)` (rs5m.models.load_clip's `checkpoint`); the
missing and unexpected keys are reported, since a checkpoint that matches no key would silently
evaluate the base model.
"""

from __future__ import annotations

import numpy as np

from rs5m.evaluation.metrics import normalize
from rs5m.models import LoadedClip, autocast_dtype


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

    dtype = None if clip.device == "cpu" else autocast_dtype(clip.device, precision)
    if dtype is None:
        return contextlib.nullcontext()
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
