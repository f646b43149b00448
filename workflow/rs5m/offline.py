"""Environment for running model libraries without network access.

Every module that loads a model calls `setup()` first; it only sets variables not set already.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def setup() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "rs5m-yolo")))
    config_dir.mkdir(parents=True, exist_ok=True)
    _place_plot_font(config_dir)


def _place_plot_font(config_dir: Path) -> None:
    """ultralytics downloads Arial.ttf when it first plots; matplotlib ships a font that serves."""
    target = config_dir / "Ultralytics" / "Arial.ttf"
    if target.exists():
        return
    try:
        import matplotlib

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except ImportError:
        return
    if font.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(font.read_bytes())
