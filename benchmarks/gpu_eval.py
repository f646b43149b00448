"""Throughput of the evaluation stage: `evaluate` images/s and `train_clip` samples/s.

Usage: PYTHONPATH=workflow python benchmarks/gpu_eval.py [--json out.json] [--smoke]
Builds ViT-B-32 with random weights (no download), writes a zero-shot folder benchmark of
generated JPEGs (45 classes, like RESISC45) and train shards in the `rs5m` member layout, then
reports: the pure image-tower rate (encode_image on a fixed batch), `evaluate` end to end
(decode + preprocess + embed + metric), the pure training-step rate (forward + backward + AdamW on
a fixed batch) and `train_clip` end to end (tar streaming + decode + step). Exits with a message
when there is no GPU. --smoke runs the same code on CPU with the tiny CLIP and small sizes (the
CPU figures of benchmarks/RESULTS.md). Sized to finish in about 4 minutes on one H100.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rs5m.configured import defaults
from rs5m.demo.rs3_tiny_models import TINY_CLIP_NAME, build_tiny_clip
from rs5m.evaluation.evaluate import evaluate
from rs5m.evaluation.settings import BaseModel, EvaluateSettings, TrainSettings
from rs5m.evaluation.train_clip import train_clip

FULL = {"model": "ViT-B-32", "images": 4500, "classes": 45, "samples": 8192, "batch": 256, "image_px": 256}
SMOKE = {"model": TINY_CLIP_NAME, "images": 180, "classes": 9, "samples": 256, "batch": 32, "image_px": 96}


def jpeg(rng: np.random.Generator, size: int) -> bytes:
    pixels = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_benchmark(root: Path, images: int, classes: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "bench" / f"Class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(jpeg(rng, size))
    return root / "bench"


def write_shards(root: Path, samples: int, size: int, per_tar: int = 1024) -> Path:
    rng = np.random.default_rng(1)
    (root / "shards" / "train").mkdir(parents=True, exist_ok=True)
    entries, written = [], 0
    pool = [jpeg(rng, size) for _ in range(256)]  # distinct bytes are not what is measured
    while written < samples:
        path = f"train/pub11-train-{len(entries):04d}.tar"
        count = min(per_tar, samples - written)
        with tarfile.open(root / "shards" / path, "w") as tar:
            for i in range(count):
                key = f"{written + i:012d}"
                for ext, data in (
                    ("img_content", pool[(written + i) % len(pool)]),
                    ("caption", f"a satellite image of scene {written + i}".encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        entries.append({"path": path, "split": "train", "samples": count})
        written += count
    manifest = root / "shards" / "pub11.manifest.json"
    manifest.write_text(json.dumps({"shards": entries}))
    return manifest


def pure_rates(model_name: str, pretrained: str | None, batch: int, device: str, bf16: bool) -> dict:
    import open_clip

    model = open_clip.create_model(model_name, pretrained=pretrained).to(device)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randn(batch, 3, size, size, device=device)
    texts = open_clip.get_tokenizer(model_name)(["a satellite image of a farm"] * batch).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def rate(step, seconds=10.0, max_iters=50):
        step()
        sync()
        iters, started = 0, time.perf_counter()
        while iters < 2 or (time.perf_counter() - started < seconds and iters < max_iters):
            step()
            sync()
            iters += 1
        return iters * batch / (time.perf_counter() - started)

    model.eval()
    with torch.inference_mode(), autocast:
        encode = rate(lambda: model.encode_image(images))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loss_fn = open_clip.ClipLoss()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            image_features, text_features, scale = model(images, texts)[:3]
            loss = loss_fn(image_features, text_features, scale)
        loss.backward()
        optimizer.step()

    return {"encode_image_per_s": encode, "train_step_samples_per_s": rate(train_step)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--smoke", action="store_true", help="tiny CLIP on CPU, small sizes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_eval: no CUDA device; run with --smoke for the CPU check", file=sys.stderr)
        return 2
    sizes = SMOKE if args.smoke else FULL
    device = "cpu" if args.smoke else "cuda"
    precision = "fp32" if args.smoke else "bf16"
    workers = min(8, os.cpu_count() or 1)
    results: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "sizes": sizes}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pretrained = str(build_tiny_clip(TINY_CLIP_NAME, root / "tiny.pt")) if args.smoke else None
        results.update(pure_rates(sizes["model"], pretrained, sizes["batch"], device, precision == "bf16"))
        bench = write_benchmark(root, sizes["images"], sizes["classes"], sizes["image_px"])
        settings = {"paths": [str(bench)], "format": "folder", "task": "zeroshot", "split": "test", "class_names": {}}
        model = {"model": sizes["model"], "pretrained": pretrained, "checkpoint": None}
        started = time.perf_counter()
        evaluate(
            root / "eval.json", "bench", settings, "base", model,
            EvaluateSettings(batch_size=sizes["batch"], device=device, precision=precision), workers,
        )  # fmt: skip
        results["evaluate_images_per_s"] = sizes["images"] / (time.perf_counter() - started)
        manifest = write_shards(root, sizes["samples"], sizes["image_px"])
        started = time.perf_counter()
        configured = TrainSettings.from_config(defaults())
        train_settings = replace(
            configured,
            train=replace(
                configured.train, samples=sizes["samples"], batch_size=sizes["batch"], warmup_samples=sizes["batch"],
                shuffle=2048, checkpoint_every=sizes["samples"], gpus=1,
            ),
            base=BaseModel(model=sizes["model"], pretrained=pretrained), device=device, precision=precision,
        )  # fmt: skip
        summary = train_clip(root / "train" / "model.pt", [manifest], train_settings, workers)
        results["train_clip_samples_per_s"] = summary["samples_seen"] / (time.perf_counter() - started)
        results["train_final_loss"] = summary["final_loss"]
    for key, value in results.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
