"""CPU side of the GPU stages: images/s per core that the scoring and captioning loaders can decode
and preprocess, full decode vs reduced-scale JPEG decode (rs5m.reduced_decode).

    PYTHONPATH=workflow python benchmarks/bench_loader_decode.py [--small]

Images: JPEGs of the sizes a web crawl serves (the two photos shipped in the ultralytics wheel at
1x and 2x, aerial renders at 1024 px; quality 90). Per image, one process, CPU seconds:
  CLIP 224      decode + open_clip's eval transform at 224 px (ViT-B-32 / ViT-H-14 input; score_part's
                CLIP input; the YOLO detector's 224 px transform costs the same again on the same decode)
  BLIP-2 224    decode (at the captioning loader's side: 448 px, RN50x64's input, the largest in
                gpu_rs3.py's configuration) + BlipImageProcessor at 224 px (BLIP-2 OPT's input)
Compare with the GPU figures benchmarks/gpu_outliers.py and gpu_rs3.py print (images/s per GPU):
the number of CPU cores one GPU needs is GPU rate / the per-core rate here.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import open_clip
import torch
import ultralytics
from PIL import Image
from transformers import BlipImageProcessor

from rs5m.demo.web import render_aerial
from rs5m.reduced_decode import open_rgb


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def images(count: int) -> list[bytes]:
    assets = Path(ultralytics.__file__).parent / "assets"
    photos = [Image.open(assets / name) for name in ("bus.jpg", "zidane.jpg")]
    pool = [jpeg(p) for p in photos] + [jpeg(p.resize((p.width * 2, p.height * 2), Image.BICUBIC)) for p in photos]
    pool += [jpeg(render_aerial(n).resize((1024, 1024), Image.BICUBIC)) for n in range(4)]
    return [pool[i % len(pool)] for i in range(count)]


def rate(function, data: list[bytes], repeat: int = 2) -> float:
    best = 0.0
    for _ in range(repeat):
        started = time.process_time()
        for item in data:
            function(item)
        best = max(best, len(data) / (time.process_time() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="40 images instead of 200")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-core figures: one process, one thread
    data = images(40 if args.small else 200)
    sizes = sorted({Image.open(io.BytesIO(d)).size for d in data})
    print(
        f"{len(data)} JPEGs, sizes {sizes}, mean {sum(map(len, data)) / len(data) / 1024:.0f} KiB; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    clip = open_clip.image_transform(224, is_train=False)
    blip = BlipImageProcessor(size={"height": 224, "width": 224})
    cases = {
        "CLIP 224 (score_part)": (lambda d, side: clip(open_rgb(d, side)), 224),
        "BLIP-2 224 (captioning, side 448)": (lambda d, side: blip(open_rgb(d, side), return_tensors="pt"), 448),
    }
    for name, (function, side) in cases.items():
        full = rate(lambda d, function=function: function(d, None), data)
        reduced = rate(lambda d, function=function, side=side: function(d, side), data)
        print(
            f"{name:36s} full decode {full:7.1f} images/s per core, reduced-scale decode {reduced:7.1f} "
            f"images/s per core ({reduced / full:.2f}x)"
        )


if __name__ == "__main__":
    main()
