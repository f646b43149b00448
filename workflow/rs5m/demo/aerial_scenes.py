"""Fast procedural aerial-like scenes for the decontamination measurements (tests, benchmarks).

`aerial_scene(n, size)` draws scene `n` of one of five kinds (fields, town, forest, desert, coast)
in ~1 ms at 96 px with numpy and OpenCV: seeded, so two calls with the same `n` give the same
pixels and different `n` give independently drawn scenes. They share coarse layouts as real aerial
tiles do (a field patchwork, a road grid, a shoreline), which is what makes chance pHash
collisions between distinct images frequent. Demo/benchmark material: production code never
imports it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

KINDS = ("fields", "town", "forest", "desert", "coast")


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random cells x cells grid upsampled bicubically."""
    grid = rng.random((cells, cells)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (out - out.min()) / max(1e-6, float(out.max() - out.min()))


def _fields(rng, size):
    img = np.zeros((size, size, 3), np.float32)
    boxes = [(0, 0, size, size)]
    for _ in range(int(rng.integers(3, 6))):
        nxt = []
        for x0, y0, x1, y1 in boxes:
            if x1 - x0 > 16 and rng.random() < 0.8:
                c = int(rng.integers(x0 + 6, x1 - 6))
                nxt += [(x0, y0, c, y1), (c, y0, x1, y1)]
            elif y1 - y0 > 16 and rng.random() < 0.8:
                c = int(rng.integers(y0 + 6, y1 - 6))
                nxt += [(x0, y0, x1, c), (x0, c, x1, y1)]
            else:
                nxt.append((x0, y0, x1, y1))
        boxes = nxt
    yy, xx = np.mgrid[0:size, 0:size]
    for x0, y0, x1, y1 in boxes:
        base = rng.uniform([60, 80, 40], [190, 180, 120])
        step = int(rng.integers(2, 5))
        stripes = ((xx[y0:y1, x0:x1] if rng.random() < 0.5 else yy[y0:y1, x0:x1]) % step == 0)[..., None]
        img[y0:y1, x0:x1] = base - 15 * stripes
    return img


def _town(rng, size):
    img = np.empty((size, size, 3), np.float32)
    img[:] = rng.uniform([90, 95, 80], [150, 150, 140])
    block = int(rng.integers(10, 24))
    for _ in range(int(rng.integers(size // 6, size // 3))):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(3, 10, 2))
        img[y : y + h, x : x + w] = (150, 70, 60) if rng.random() < 0.5 else rng.uniform(150, 220, 3)
    road = rng.uniform(100, 130)
    off = int(rng.integers(0, block))
    width = int(rng.integers(1, 4))
    for k in range(off, size, block):
        img[k : k + width] = road
        img[:, k : k + width] = road
    return img


def _forest(rng, size):
    canopy = _smooth(rng, size, int(rng.integers(3, 7)))
    fine = _smooth(rng, size, size // 3)
    dark = rng.uniform([20, 50, 20], [60, 90, 50])
    light = rng.uniform([60, 100, 40], [110, 150, 80])
    t = (0.6 * canopy + 0.4 * fine)[..., None]
    return dark + (light - dark) * t


def _desert(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(0.08, 0.3)
    warp = 8 * _smooth(rng, size, 4)
    dunes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + warp)
    base = rng.uniform([170, 140, 90], [230, 200, 150])
    return base * (0.8 + 0.2 * dunes[..., None])


def _coast(rng, size):
    land = _fields(rng, size) if rng.random() < 0.5 else _forest(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    level = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.25 * (_smooth(rng, size, 5) - 0.5)
    water = (level > rng.uniform(-0.3, 0.3))[..., None]
    sea = rng.uniform([20, 50, 80], [60, 100, 140])
    return np.where(water, sea, land)


def aerial_scene(n: int, size: int = 96) -> Image.Image:
    """Scene `n` (seeded), `size` x `size` RGB: one of KINDS, rotated at random, with sensor noise."""
    rng = np.random.default_rng([23, n])
    kind = KINDS[int(rng.integers(len(KINDS)))]
    big = int(size * 1.5)
    img = globals()[f"_{kind}"](rng, big)
    matrix = cv2.getRotationMatrix2D((big / 2, big / 2), float(rng.uniform(0, 360)), 1.0)
    img = cv2.warpAffine(img, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lo = (big - size) // 2
    img = img[lo : lo + size, lo : lo + size] + rng.normal(0, 5, (size, size, 1)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.5)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
