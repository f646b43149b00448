"""Shard-writing benchmark: rs5m.shards MB/s next to a plain sequential copy of the same bytes.

PUB11 path: images read from img2dataset-style download tars (each read once, front to back),
written to train/val shards with name, caption and provenance members. The copy baseline reads
the same download tars and writes their bytes to one file. Target: shard writing >= 0.7 of the copy.

    PYTHONPATH=workflow python benchmarks/bench_shards.py [--small]
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.shards import PUB11, write_subset_shards


def make_downloads(run: Path, images: int, image_bytes: int, per_tar: int) -> int:
    rng = np.random.default_rng(0)
    payloads = [b"\xff\xd8\xff\xe0" + rng.bytes(image_bytes - 4) for _ in range(32)]
    rows, total = [], 0
    for start in range(0, images, per_tar):
        tar_rel = f"results/pub11/download/{start // per_tar:04d}/00000.tar"
        (run / tar_rel).parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(run / tar_rel, "w") as archive:
            for n in range(start, min(images, start + per_tar)):
                data = payloads[n % len(payloads)]
                info = tarfile.TarInfo(f"{n:09d}.jpg")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                url = f"http://example.invalid/{n}.jpg"
                rows.append({"uid": make_uid("laion2b", url), "source": "laion2b", "url": url,
                             "caption": f"satellite image number {n}", "matched_keywords": ["satellite"],
                             "part": f"{start // per_tar:04d}", "tar": tar_rel, "member": info.name,
                             "width": 256, "height": 256, "clip_score": 0.3, "rs_score": 0.9})
        total += (run / tar_rel).stat().st_size
    pq.write_table(pa.Table.from_pylist(rows), run / "results/pub11/final.parquet")
    return total


def drop_cache_hint(paths) -> None:
    # Both contenders read from the page cache: warm it the same way for each.
    for path in paths:
        Path(path).read_bytes()


def plain_copy(run: Path, out: Path) -> tuple[float, float, int]:
    tars = sorted((run / "results/pub11/download").glob("*/*.tar"))
    drop_cache_hint(tars)
    started, cpu = time.perf_counter(), time.process_time()
    with open(out, "wb") as sink:
        for tar in tars:
            with open(tar, "rb") as source:
                shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()
        os.fsync(sink.fileno())
    return time.perf_counter() - started, time.process_time() - cpu, out.stat().st_size


def shard_write(run: Path, shards: Path) -> tuple[float, float, int]:
    drop_cache_hint(sorted((run / "results/pub11/download").glob("*/*.tar")))
    started, cpu = time.perf_counter(), time.process_time()
    manifest = write_subset_shards(PUB11, run / "results/pub11/final.parquet", shards, shards / "m.json",
                                   0.05, 64 << 20, base_dir=run)
    for shard in manifest.shards:
        with open(shards / shard.path, "rb+") as handle:
            os.fsync(handle.fileno())
    return time.perf_counter() - started, time.process_time() - cpu, sum(shard.bytes for shard in manifest.shards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2,000 images instead of 10,000")
    # RS5M is ~500 GB for 5.07 M samples: ~100 KB per sample.
    parser.add_argument("--image-kb", type=int, default=100, help="bytes per image, in KiB")
    args = parser.parse_args()
    images = 2000 if args.small else 10000
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        source_bytes = make_downloads(run, images, args.image_kb << 10, per_tar=1000)
        copy_s, copy_cpu, copy_bytes = plain_copy(run, run / "copy.bin")
        shard_s, shard_cpu, shard_bytes = shard_write(run, run / "shards")
    mb = source_bytes / 1e6
    print(f"{images} images of {args.image_kb} KiB in {mb:.0f} MB of download tars (MB/s of input bytes)")
    print(f"plain sequential copy: {mb / copy_s:8.1f} MB/s wall, {mb / copy_cpu:8.1f} MB per CPU-second "
          f"({copy_bytes / 1e6:.0f} MB written)")
    print(f"shard writing        : {mb / shard_s:8.1f} MB/s wall, {mb / shard_cpu:8.1f} MB per CPU-second "
          f"({shard_bytes / 1e6:.0f} MB written, {images / shard_s:.0f} samples/s)")
    print(f"ratio shard/copy     : {copy_s / shard_s:.2f} wall, {copy_cpu / shard_cpu:.2f} CPU (target >= 0.70)")


if __name__ == "__main__":
    sys.exit(main())
