"""Model mechanics shared by the GPU stages: the one open_clip loader, the device and autocast
choices, open_clip architectures that ship beside their checkpoint, and the marker that says a
checkpoint holds random weights (loaders then warn loudly).

An open_clip architecture that open_clip does not know (a custom or tiny model) is used by placing
its open_clip model config, named `<model>.json`, in the folder of the local checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rs5m import offline

logger = logging.getLogger("rs5m.models")

# Marker written beside random-init weights (a file `<checkpoint>.<marker>`, or `<folder>/<marker>`).
RANDOM_WEIGHTS_MARKER = "RS5M_RANDOM_WEIGHTS"


def is_random_weights(path: str | Path) -> bool:
    """True for a model folder or checkpoint marked as random weights (a test or demo model)."""
    path = Path(path)
    return (path / RANDOM_WEIGHTS_MARKER).exists() or path.with_name(path.name + "." + RANDOM_WEIGHTS_MARKER).exists()


def clip_config_path(model: str, checkpoint: str | Path) -> Path:
    """Where an open_clip model config for `model` sits beside a local checkpoint."""
    return Path(checkpoint).with_name(f"{model}.json")


def register_clip_config(model: str, pretrained: str | None) -> None:
    """Make `model` known to open_clip from a `<model>.json` beside the local checkpoint, if there is one."""
    import open_clip

    if model in open_clip.list_models() or not pretrained:
        return
    config = clip_config_path(model, pretrained)
    if config.is_file():
        open_clip.add_model_config(config)


def resolve_device(device: str) -> str:
    """`auto` is the first CUDA GPU where there is one, else the CPU; any other name is kept."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def autocast_dtype(device: str, precision: str):
    """The autocast dtype for `precision`: auto is bf16 (fp16 where bf16 is missing) on GPU, fp32 on CPU."""
    import torch

    if precision == "fp32" or (precision == "auto" and not device.startswith("cuda")):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class LoadedClip:
    """An open_clip model in eval mode with what using it needs, and what loading it found."""

    model: object
    preprocess: object
    tokenizer: object
    device: str
    random_weights: bool
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)


def checkpoint_state_dict(path: str) -> dict:
    """The model weights of a checkpoint file: a bare state dict, or one under `state_dict` (an
    open_clip training checkpoint), with DataParallel/DDP's `module.` prefix removed."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def load_clip(
    model: str, pretrained: str | None, checkpoint: str | None, device: str, weights_precision: str = "fp32"
) -> LoadedClip:
    """The one open_clip loader of every stage: architecture `model` with `pretrained` weights (an
    open_clip tag, which needs the hub or its cache, a local checkpoint file, or None for random
    weights), then an optional state dict `checkpoint` on top with strict=False (as the released
    GeoRSCLIP checkpoints load; missing and unexpected keys are logged and returned, and a
    checkpoint that matches no key fails). `weights_precision` is open_clip's `precision` of the
    weights (fp32, or fp16 on a GPU); autocast is the caller's. Random weights are logged loudly:
    only tests and the demo should use them."""
    offline.setup()
    import open_clip

    device = resolve_device(device)
    register_clip_config(model, pretrained)
    clip, _, preprocess = open_clip.create_model_and_transforms(
        model, pretrained=pretrained or None, device=device, precision=weights_precision
    )
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
        if len(missing) == len(clip.state_dict()):
            raise ValueError(f"checkpoint {checkpoint}: none of its keys belongs to {model}")
    random_weights = (not pretrained or is_random_weights(pretrained)) and (
        not checkpoint or is_random_weights(checkpoint)
    )
    if random_weights:
        logger.warning(
            "!!! CLIP %s has RANDOM weights: its scores and numbers carry no meaning; demo and tests only !!!", model
        )
    else:
        logger.info("CLIP %s with weights %s%s", model, pretrained, f" + {checkpoint}" if checkpoint else "")
    return LoadedClip(
        clip.eval(), preprocess, open_clip.get_tokenizer(model), device, random_weights, missing, unexpected
    )
