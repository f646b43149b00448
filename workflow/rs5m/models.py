"""Model files shared by the GPU stages: open_clip architectures that ship beside their checkpoint,
and the marker that says a checkpoint holds random weights (loaders then warn loudly).

An open_clip architecture that open_clip does not know (a custom or tiny model) is used by placing
its open_clip model config, named `<model>.json`, in the folder of the local checkpoint.
"""

from __future__ import annotations

from pathlib import Path

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
