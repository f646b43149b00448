"""Decoding images for the GPU stages at the scale the model needs (outlier scoring, captioning).

A JPEG at least twice the model's input side is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (DCT
scaling, PIL's `draft`), never below `side` pixels on its shorter side, then handed to the model's
own resize; smaller JPEGs and other formats are decoded in full. The models resize to `side`
anyway, so the pixels they see change only by the resampling path (about 2-6 x less decode time
on 2-4 x larger images; benchmarks/bench_loader_decode.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from PIL import Image


def open_rgb(source: bytes | str | Path, side: int | None = None) -> Image.Image:
    """The image as RGB; with `side`, a large JPEG is decoded at the smallest DCT scale that keeps
    its shorter side >= side."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        if side and image.format == "JPEG" and min(image.size) >= 2 * side:
            image.draft("RGB", (side, side))
        return image.convert("RGB")


def input_side(*sizes) -> int:
    """The largest input side among model sizes given as ints, (h, w) pairs, {'height', 'width'}
    mappings or objects with those attributes (transformers' SizeDict)."""
    sides = []
    for size in sizes:
        if isinstance(size, Mapping) or hasattr(size, "height") or hasattr(size, "shortest_edge"):
            get = size.get if isinstance(size, Mapping) else (lambda key: getattr(size, key, None))  # noqa: B023
            sides += [int(v) for v in (get(k) for k in ("height", "width", "shortest_edge")) if v]
        elif isinstance(size, (tuple, list)):
            sides += [int(v) for v in size]
        elif size:
            sides.append(int(size))
    return max(sides)
