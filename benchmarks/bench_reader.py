"""Reader benchmark: SPEC 5's loader recipe on shards written by rs5m.assemble.shards, images/s per core.

The authors' loader (webdataset -> shuffle 10,000 -> decode -> CLIP ViT-B/32 preprocessing ->
batches of 400) reached about 1,800 images/s on 16 cores, ~112 per core. This runs it in one
process with one torch thread (one core), once with a full JPEG decode and once with
`rs5m.loader`'s reduced-scale (draft) decode, on synthetic photos of a chosen size.

    PYTHONPATH=workflow python benchmarks/bench_reader.py [--small] [--side 768]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

AUTHORS_PER_CORE = 1800 / 16


def photo_like_jpeg(side: int, rng: np.random.Generator) -> bytes:
    """Smooth structure plus fine noise: compresses and decodes like an aerial photo, not like noise."""
    coarse = Image.fromarray(rng.integers(0, 256, (side // 32 + 1, side // 32 + 1, 3), dtype=np.uint8))
    image = coarse.resize((side, int(side * 0.75)), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    noise = rng.normal(0, 8, (image.height, image.width, 3))
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_shards(folder: Path, count: int, side: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rs5m.assemble.manifest import RS3
    from rs5m.assemble.settings import ShardSettings
    from rs5m.assemble.shards import write_subset_shards
    from rs5m.columns import make_uid
    from rs5m.configured import config

    rng = np.random.default_rng(0)
    distinct = [photo_like_jpeg(side, rng) for _ in range(min(count, 64))]
    rows = []
    for n in range(count):
        path = folder / "img" / f"{n}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(distinct[n % len(distinct)])
        rows.append(
            {
                "uid": make_uid("bench", str(n)),
                "dataset": "bench",
                "img_name": f"bench_{n}.jpg",
                "image_path": str(path),
                "caption": f"an aerial view number {n}",
                "top_cap": None,
                "ssl_cap": None,
                "meta_caption": None,
                "labels": [],
                "geo": None,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), folder / "final.parquet")
    settings = ShardSettings.from_config(
        config({"split": {"val_fraction": 0.0}, "shards": {"target_bytes": 256 << 20}})
    )
    manifest = write_subset_shards(RS3, folder / "final.parquet", folder / "shards", folder / "m.json", settings)
    return [str(folder / "shards" / shard.path) for shard in manifest.shards]


def measure(urls: list[str], draft: bool, batch: int, shuffle: int) -> tuple[float, float]:
    """(images per CPU-second of this process, images per wall-second).

    One process with one torch thread uses at most one core, so CPU time is the per-core figure
    even on a machine shared with other work, where wall time would count waiting for the CPU.
    """
    from rs5m.loader import make_loader

    cpu, wall, images = time.process_time(), time.perf_counter(), 0
    for tensors, _captions in make_loader(urls, batch_size=batch, shuffle=shuffle, draft=draft):
        images += tensors.shape[0]
    return images / (time.process_time() - cpu), images / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,200 images instead of 6,000")
    parser.add_argument("--side", type=int, default=768, help="image width in pixels (height 3/4 of it)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    count = 1200 if args.small else 6000
    with tempfile.TemporaryDirectory() as tmp:
        urls = make_shards(Path(tmp), count, args.side)
        print(
            f"{count} images of {args.side}x{int(args.side * 0.75)} px, shuffle 10,000, batches of 400, "
            f"1 process, 1 torch thread"
        )
        full, full_wall = measure(urls, draft=False, batch=400, shuffle=10_000)
        fast, fast_wall = measure(urls, draft=True, batch=400, shuffle=10_000)
    print(
        f"full decode + torchvision preprocess: {full:7.1f} images per CPU-second ({full_wall:.1f}/s wall), "
        f"{full / AUTHORS_PER_CORE:.2f}x the authors' {AUTHORS_PER_CORE:.0f}/core"
    )
    print(
        f"draft decode + rs5m.loader preprocess: {fast:7.1f} images per CPU-second ({fast_wall:.1f}/s wall), "
        f"{fast / AUTHORS_PER_CORE:.2f}x the authors'; {fast / full:.2f}x full decode"
    )


if __name__ == "__main__":
    sys.exit(main())
