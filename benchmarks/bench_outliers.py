"""CPU throughput of the outlier scoring stage with the demo's tiny CLIP vs a decode-only loop.

Usage: PYTHONPATH=workflow python benchmarks/bench_outliers.py [--small]
Prints images/s for: decode + both preprocessings in one process (what a DataLoader worker does),
the two models alone on ready tensors, and the whole score_part stage (workers = --workers).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outlier_bench_inputs import untrained_detector, write_run  # noqa: E402

from rs5m.configured import defaults
from rs5m.demo.rs3_tiny_models import TINY_CLIP_NAME, register_tiny_clip
from rs5m.models import load_clip
from rs5m.pub11.score_part import ShardImages, rs_probability, score_part
from rs5m.pub11.settings import ScoringSettings
from rs5m.pub11.train_rs_detector import load_detector  # noqa: E402
from rs5m.tar import locate_members  # noqa: E402

register_tiny_clip()  # the tiny architecture is known to open_clip before any load_clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="400 images instead of 2,000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--detector-imgsz", type=int, default=224)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    images = 400 if args.small else 2000

    root = Path(tempfile.mkdtemp(prefix="bench-outliers-"))
    kept = write_run(root, images)
    weights = untrained_detector(root / "detector.pt", imgsz=args.detector_imgsz)
    loaded = load_clip(TINY_CLIP_NAME, None, None, "cpu")
    clip, clip_preprocess = loaded.model, loaded.preprocess
    detector, detector_preprocess, rs_index, _ = load_detector(weights)
    rows = pq.read_table(kept)
    locations = locate_members(zip(rows.column("tar").to_pylist(), rows.column("member").to_pylist()), root=root)
    dataset = ShardImages(locations, [clip_preprocess, detector_preprocess])

    # One torch thread, as in a DataLoader worker (torch sets it there); on a busy machine two
    # threads make each small tensor op wait for the other thread.
    model_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    decode_rate = len(dataset) / (time.perf_counter() - started)

    clip_only = ShardImages(locations, [clip_preprocess])
    started = time.perf_counter()
    for i in range(len(clip_only)):
        clip_only[i]
    decode_clip_rate = len(clip_only) / (time.perf_counter() - started)
    torch.set_num_threads(model_threads)

    batch = [dataset[i] for i in range(args.batch_size)]
    clip_batch = torch.stack([b[0] for b in batch])
    detector_batch = torch.stack([b[1] for b in batch])
    rounds = max(1, images // args.batch_size // 4)
    with torch.inference_mode():
        clip.encode_image(clip_batch)
        started = time.perf_counter()
        for _ in range(rounds):
            clip.encode_image(clip_batch)
        clip_rate = rounds * args.batch_size / (time.perf_counter() - started)
        rs_probability(detector, detector_batch, rs_index)
        started = time.perf_counter()
        for _ in range(rounds):
            rs_probability(detector, detector_batch, rs_index)
        detector_rate = rounds * args.batch_size / (time.perf_counter() - started)
    model_rate = 1 / (1 / clip_rate + 1 / detector_rate)

    started = time.perf_counter()
    configured = ScoringSettings.from_config(defaults())  # the configured prompts
    table = score_part(
        kept,
        "0000",
        weights,
        root / "scores.parquet",
        replace(
            configured,
            clip=replace(configured.clip, model=TINY_CLIP_NAME, pretrained=None),
            batch_size=args.batch_size,
            device="cpu",
            precision="auto",
            reduced_decode=False,
        ),
        workers=args.workers,
        embeddings_out=None,
        root=root,
    )
    total = time.perf_counter() - started
    loop = float(table.schema.metadata[b"scoring_seconds"])

    print(
        f"images: {images} JPEGs 256 px in {len({location.tar for location in locations})} shards; torch threads {torch.get_num_threads()}"
    )
    print(
        f"decode + CLIP and detector ({args.detector_imgsz} px) preprocessing, 1 process: {decode_rate:8.1f} images/s"
    )
    print(f"decode + CLIP preprocessing only, 1 process:                {decode_clip_rate:8.1f} images/s")
    print(f"tiny CLIP image tower alone (batch {args.batch_size}):                   {clip_rate:8.1f} images/s")
    print(
        f"YOLO11n-cls at {args.detector_imgsz} px alone (batch {args.batch_size}):               {detector_rate:8.1f} images/s"
    )
    print(f"both models alone (serial):                                {model_rate:8.1f} images/s")
    print(f"score_part stage, {args.workers} DataLoader worker(s), scoring loop:     {images / loop:8.1f} images/s")
    print(f"score_part stage incl. model loading and tar indexing:     {images / total:8.1f} images/s ({total:.1f} s)")
    print(
        f"ratio stage loop / decode-only: {images / loop / decode_rate:.2f}; stage loop / models-only: {images / loop / model_rate:.2f}"
    )


if __name__ == "__main__":
    main()
