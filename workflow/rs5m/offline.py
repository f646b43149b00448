"""Environment for the model libraries: quiet, and without network access when asked.

Every module that loads a model calls `setup()` first; it only sets variables not set already.
Hub downloads stay allowed unless RS5M_OFFLINE=1 (config `offline: true`, as in the demo), so a
user with internet can name hub models while the demo and tests never touch the network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def setup() -> None:
    if os.environ.get("RS5M_OFFLINE") == "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # ultralytics' own update and DNS checks: never needed to build, train or predict.
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
