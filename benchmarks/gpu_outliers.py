"""GPU throughput of the outlier stage's models and of the real score_part stage.

Usage: PYTHONPATH=workflow python benchmarks/gpu_outliers.py [--json out.json] [--smoke]
Builds the full-size architectures without weights (open_clip convnext_xxlarge and ViT-H-14 image
towers, a YOLO classifier at 224 px) and reports images/s per batch size in fp32 (TF32 off) and
bf16, then end-to-end images/s of score_part on a few thousand generated JPEGs in webdataset
shards, against the pure-model rate (target: the stage within 1.5x of it). Exits with a message
when there is no GPU. --smoke runs the same code on CPU with tiny models and sizes (a script check).
Sized to finish in about 6 minutes on one H100.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outlier_bench_inputs import untrained_detector, write_run  # noqa: E402

from rs5m.configured import defaults
from rs5m.demo.rs3_tiny_models import TINY_CLIP_NAME, register_tiny_clip
from rs5m.models import load_clip
from rs5m.pub11.score_part import rs_probability, score_part
from rs5m.pub11.settings import ScoringSettings
from rs5m.pub11.train_rs_detector import load_detector  # noqa: E402

register_tiny_clip()  # the tiny architecture is known to open_clip before any load_clip

BATCHES = (1, 8, 32, 128, 256, 512)


def measure(forward, make_batch, batch_size: int, dtype, device: str, min_seconds: float, max_iters: int) -> float:
    """images/s of `forward` on one batch: one warm-up call, then calls until min_seconds or max_iters."""
    x = make_batch(batch_size).to(device)
    if device == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        forward(x)
        if device == "cuda":
            torch.cuda.synchronize()
        iters, started = 0, time.perf_counter()
        while iters < 2 or (time.perf_counter() - started < min_seconds and iters < max_iters):
            forward(x)
            if device == "cuda":
                torch.cuda.synchronize()
            iters += 1
    return iters * batch_size / (time.perf_counter() - started)


def sweep(name, forward, image_size, batches, device, budget_s, results):
    """fp32 and bf16 over the batch sizes; stops growing a precision's batch once over budget or OOM."""
    make_batch = lambda n: torch.randn(n, 3, image_size, image_size)  # noqa: E731
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        started = time.perf_counter()
        for batch in batches:
            if time.perf_counter() - started > budget_s:
                print(f"  {name} {precision}: batch {batch} and up skipped (time budget)", flush=True)
                break
            try:
                rate = measure(forward, make_batch, batch, dtype, device, min_seconds=1.0, max_iters=20)
            except torch.OutOfMemoryError:
                print(f"  {name} {precision}: batch {batch} out of memory", flush=True)
                torch.cuda.empty_cache()
                break
            results.append({"model": name, "precision": precision, "batch": batch, "images_per_s": round(rate, 1)})
            print(f"  {name:28s} {precision}  batch {batch:4d}: {rate:9.1f} images/s", flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="write the figures here as JSON")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models and sizes: checks the script runs")
    parser.add_argument("--images", type=int, default=4000, help="JPEGs for the end-to-end stage run")
    parser.add_argument("--workers", type=int, default=min(15, max(1, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--batch-size", type=int, default=256, help="score_part batch size")
    parser.add_argument("--yolo", default="yolo11n-cls.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if not args.smoke and not torch.cuda.is_available():
        print("gpu_outliers: no CUDA GPU on this machine; nothing measured (run it where one is lent, or --smoke)")
        return 0
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda":
        # fp32 means fp32: no TF32 in matmuls or convolutions.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    clip_models = [TINY_CLIP_NAME] if args.smoke else ["convnext_xxlarge", "ViT-H-14"]
    batches = (1, 4) if args.smoke else BATCHES
    images = min(args.images, 64) if args.smoke else args.images
    batch_size = 8 if args.smoke else args.batch_size
    budget = 5.0 if args.smoke else 40.0
    results: list[dict] = []
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "models": results}

    work = Path(tempfile.mkdtemp(prefix="gpu-outliers-"))
    detector_weights = untrained_detector(work / "detector.pt", model=args.yolo, imgsz=224)
    detector, _, rs_index, _ = load_detector(detector_weights, device=device)
    if device == "cuda":
        detector = detector.to(memory_format=torch.channels_last)
    print(f"YOLO classifier {args.yolo} at 224 px:", flush=True)
    sweep(f"{args.yolo}@224", lambda x: rs_probability(detector, x, rs_index), 224, batches, device, budget, results)

    for name in clip_models:
        clip = load_clip(name, None, None, device).model
        if device == "cuda":
            clip = clip.to(memory_format=torch.channels_last)
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        print(f"CLIP {name} image tower at {size} px:", flush=True)
        sweep(name, clip.encode_image, size, batches, device, budget, results)
        del clip
        if device == "cuda":
            torch.cuda.empty_cache()

    # End to end: the real stage with the first (the stage's) CLIP model, bf16, shards on local disk.
    stage_model = clip_models[0]
    started = time.perf_counter()
    kept = write_run(work, images)
    print(f"wrote {images} JPEGs in {time.perf_counter() - started:.1f} s", flush=True)
    configured = ScoringSettings.from_config(defaults())  # the configured prompts
    table = score_part(
        kept,
        "0000",
        detector_weights,
        work / "scores.parquet",
        replace(
            configured,
            clip=replace(configured.clip, model=stage_model, pretrained=None),
            batch_size=batch_size,
            device=device,
            precision="bf16" if device == "cuda" else "fp32",
            reduced_decode=False,
        ),
        workers=args.workers,
        embeddings_out=None,
        root=work,
    )
    stage_rate = images / float(table.schema.metadata[b"scoring_seconds"])

    def model_rate(name):
        match = [
            r for r in results if r["model"] == name and r["precision"] == ("bf16" if device == "cuda" else "fp32")
        ]
        best = min(match, key=lambda r: abs(r["batch"] - batch_size)) if match else None
        return best["images_per_s"] if best else float("nan")

    pure = 1 / (1 / model_rate(stage_model) + 1 / model_rate(f"{args.yolo}@224"))
    report["stage"] = {
        "clip": stage_model,
        "detector": args.yolo,
        "images": images,
        "batch_size": batch_size,
        "workers": args.workers,
        "images_per_s": round(stage_rate, 1),
        "models_only_images_per_s": round(pure, 1),
        "models_over_stage": round(pure / stage_rate, 2),
    }
    print(
        f"score_part end to end ({stage_model} + {args.yolo}, batch {batch_size}, {args.workers} workers): "
        f"{stage_rate:.1f} images/s; both models alone: {pure:.1f} images/s; ratio {pure / stage_rate:.2f} "
        f"(target <= 1.5)",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
