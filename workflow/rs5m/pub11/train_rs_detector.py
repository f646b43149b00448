"""Outlier stage, image side: the RS-image detector c_i = P(RS | image), an ultralytics YOLO classifier.

Trains it from positive/negative image folders (class-balanced 7:1:2 split; writes weights and a
metrics JSON), loads trained weights for batched inference, and exports training images from shards.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rs5m import offline
from rs5m.models import resolve_device
from rs5m.pub11.settings import DetectorSettings
from rs5m.tar import MemberReader, locate_members

logger = logging.getLogger("rs5m.pub11.train_rs_detector")

RS_CLASS = "rs"
NON_RS_CLASS = "non_rs"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folders: Iterable[str | Path]) -> list[Path]:
    """Every image file under the folders (recursive), sorted so a seeded split is reproducible."""
    images = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist")
        images.extend(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(images)


def split_counts(n: int, ratios: Sequence[int] = (7, 1, 2)) -> tuple[int, int, int]:
    """Train/val/test sizes for n images of one class.

    val and test get round(n * ratio / total) (at least 1 each when n >= 3, so every split can be
    scored); train takes the rest, so the three always add up to n.
    """
    total = sum(ratios)
    val = int(round(Fraction(n * ratios[1], total)))
    test = int(round(Fraction(n * ratios[2], total)))
    if n >= 3:
        val, test = max(val, 1), max(test, 1)
    return n - val - test, val, test


def balanced_split(
    positives: Sequence[Path],
    negatives: Sequence[Path],
    *,
    seed: int,
    max_per_class: int | None,
    ratios: Sequence[int] = (7, 1, 2),
) -> dict[str, dict[str, list[Path]]]:
    """Class-balanced split: both classes are cut to the same size (seeded sample), then each is split
    by `ratios` on its own, so train, val and test each hold equal numbers of RS and non-RS images."""
    per_class = min(len(positives), len(negatives))
    if max_per_class:
        per_class = min(per_class, int(max_per_class))
    if per_class < 3:
        raise ValueError(
            f"need at least 3 images per class for a 7:1:2 split, got {len(positives)} RS and {len(negatives)} non-RS"
        )
    rng = random.Random(seed)
    split: dict[str, dict[str, list[Path]]] = {name: {} for name in SPLITS}
    train_n, val_n, _ = split_counts(per_class, ratios)
    for label, images in ((RS_CLASS, positives), (NON_RS_CLASS, negatives)):
        chosen = rng.sample(sorted(images), per_class)
        split["train"][label] = chosen[:train_n]
        split["val"][label] = chosen[train_n : train_n + val_n]
        split["test"][label] = chosen[train_n + val_n :]
    return split


def write_split_folders(split: dict[str, dict[str, list[Path]]], root: str | Path) -> Path:
    """Lay the split out as ultralytics' classification layout root/{train,val,test}/{rs,non_rs}/, as symlinks."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    for split_name, classes in split.items():
        for label, images in classes.items():
            folder = root / split_name / label
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                # Index prefix: two source folders may hold files of the same name.
                (folder / f"{i:06d}{image.suffix.lower()}").symlink_to(Path(image).resolve())
    return root


def train_rs_detector(
    positive_dirs: Sequence[str | Path],
    negative_dirs: Sequence[str | Path],
    weights_out: str | Path,
    metrics_out: str | Path,
    work_dir: str | Path,
    settings: DetectorSettings,
    workers: int,
    ratios: Sequence[int] = (7, 1, 2),  # not config: the paper's train:val:test split of the detector images
) -> dict:
    """Train the RS/non-RS classifier on a class-balanced 7:1:2 split and report val/test accuracy.

    `settings.detector.model` is an ultralytics model file: a `.yaml` builds random-initialised weights (offline), a
    `.pt` fine-tunes existing ones. Accuracy is measured with `predict_rs_probability`, the same
    preprocessing and head the scoring stage uses, at P(RS) >= 0.5. `detector.train_args` passes further
    ultralytics training arguments (e.g. `warmup_epochs`, `lr0`) through unchanged.
    """
    offline.setup()
    from ultralytics import YOLO

    detector = settings.detector
    model, epochs, imgsz, batch, seed = detector.model, detector.epochs, detector.imgsz, detector.batch, detector.seed
    train_args = detector.train_args
    positives, negatives = list_images(positive_dirs), list_images(negative_dirs)
    logger.info(
        "detector training images: %d RS from %s, %d non-RS from %s",
        len(positives),
        list(map(str, positive_dirs)),
        len(negatives),
        list(map(str, negative_dirs)),
    )
    split = balanced_split(positives, negatives, ratios=ratios, seed=seed, max_per_class=detector.max_per_class)
    work_dir = Path(work_dir).resolve()
    data_root = write_split_folders(split, work_dir / "data")
    device = resolve_device(settings.device)
    if str(model).endswith(".yaml"):
        logger.warning(
            "RS detector starts from RANDOM weights (%s): only its training on the folders above teaches it", model
        )

    yolo = YOLO(str(model))
    yolo.train(
        data=str(data_root),
        epochs=int(epochs),
        imgsz=int(imgsz),
        batch=int(batch),
        workers=int(workers),
        seed=int(seed),
        deterministic=True,
        device=device,
        amp=bool(detector.amp),
        project=str(work_dir),
        name="train",
        exist_ok=True,
        plots=False,
        verbose=False,
        **(train_args or {}),
    )
    trained = Path(yolo.trainer.best if Path(yolo.trainer.best).exists() else yolo.trainer.last)
    weights_out = Path(weights_out)
    weights_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, weights_out)

    metrics = {
        "model": str(model),
        "epochs": int(epochs),
        "imgsz": int(imgsz),
        "batch": int(batch),
        "seed": int(seed),
        "ratios": list(ratios),
        "train_args": dict(train_args or {}),
        "images": {name: {label: len(paths) for label, paths in classes.items()} for name, classes in split.items()},
        "ultralytics_val_top1": _float_or_none(yolo.trainer.metrics.get("metrics/accuracy_top1")),
    }
    for split_name in ("val", "test"):
        metrics[f"{split_name}_accuracy"] = split_accuracy(weights_out, split[split_name], device=device)
    Path(metrics_out).parent.mkdir(parents=True, exist_ok=True)
    Path(metrics_out).write_text(json.dumps(metrics, indent=1) + "\n")
    logger.info(
        "RS detector: val accuracy %.4f, test accuracy %.4f -> %s",
        metrics["val_accuracy"],
        metrics["test_accuracy"],
        weights_out,
    )
    return metrics


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def split_accuracy(weights: str | Path, classes: dict[str, list[Path]], device: str = "cpu") -> float:
    paths = classes[RS_CLASS] + classes[NON_RS_CLASS]
    truth = np.array([1] * len(classes[RS_CLASS]) + [0] * len(classes[NON_RS_CLASS]))
    predicted = predict_rs_probability(weights, paths, device=device) >= 0.5
    return float((predicted == truth).mean())


def load_detector(weights: str | Path, device: str = "cpu", imgsz: int | None = None):
    """(torch module in eval mode on `device`, PIL->tensor transform, index of the RS class, imgsz).

    The transform is ultralytics' own evaluation transform at the training image size (stored in
    the weights), so inference sees images exactly as validation did.
    """
    offline.setup()
    from ultralytics import YOLO
    from ultralytics.data.augment import classify_transforms

    yolo = YOLO(str(weights))
    names = {int(k): v for k, v in yolo.names.items()}
    if RS_CLASS not in names.values():
        raise ValueError(f"detector {weights} has classes {names}, expected one named {RS_CLASS!r}")
    rs_index = next(k for k, v in names.items() if v == RS_CLASS)
    if imgsz is None:
        imgsz = int(yolo.ckpt.get("train_args", {}).get("imgsz", 224)) if getattr(yolo, "ckpt", None) else 224
    module = yolo.model.float().eval().to(device)
    return module, classify_transforms(size=imgsz), rs_index, imgsz


def rs_probability(module, batch, rs_index: int):
    """P(RS) for a preprocessed batch; the head returns (probabilities, logits) in eval mode."""
    out = module(batch)
    probabilities = out[0] if isinstance(out, (tuple, list)) else out
    return probabilities.float()[:, rs_index]


def predict_rs_probability(
    weights: str | Path, images: Sequence[str | Path], *, device: str, batch_size: int = 64
) -> np.ndarray:
    """P(RS) for image files, in batches."""
    import torch
    from PIL import Image

    device = resolve_device(device)
    module, transform, rs_index, _ = load_detector(weights, device=device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = []
            for path in images[start : start + batch_size]:
                with Image.open(path) as im:
                    batch.append(transform(im.convert("RGB")))
            out.append(rs_probability(module, torch.stack(batch).to(device), rs_index).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def export_training_images(
    kept: str | Path,
    out_dir: str | Path,
    caption_pattern: str | None = None,
    exclude_pattern: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    root: str | Path = ".",
) -> list[Path]:
    """Write images of kept.parquet rows to `out_dir` as `<uid>.jpg`, for a detector training folder.

    Rows are chosen by a case-insensitive regex on the caption (`caption_pattern` must match,
    `exclude_pattern` must not), then a seeded sample of at most `limit`. Bytes are copied from
    the download shards as they are, not re-encoded.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(kept, columns=["uid", "caption", "tar", "member"]).to_pylist()
    include = re.compile(caption_pattern, re.IGNORECASE) if caption_pattern else None
    exclude = re.compile(exclude_pattern, re.IGNORECASE) if exclude_pattern else None
    rows = [
        r
        for r in table
        if (include is None or include.search(r["caption"] or ""))
        and (exclude is None or not exclude.search(r["caption"] or ""))
    ]
    if limit is not None and len(rows) > limit:
        rows = random.Random(seed).sample(rows, int(limit))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = MemberReader()
    written = []
    try:
        for row, location in zip(rows, locate_members(((r["tar"], r["member"]) for r in rows), root=root)):
            path = out_dir / f"{row['uid']}{Path(row['member']).suffix or '.jpg'}"
            path.write_bytes(reader.read(location))
            written.append(path)
    finally:
        reader.close()
    logger.info("exported %d of %d rows to %s", len(written), len(table), out_dir)
    return written
