"""The 64-bit perceptual hash every stage shares: the image stage stores it, the near-duplicate
dedup and the eval-set decontamination compare it.

pHash is imagehash's `phash` (32x32 LANCZOS grayscale, 2-D DCT-II, 8x8 low band > median), with the
DCT done as two small matrix products instead of scipy calls: the same bits, several times faster.
Stored as the 64 bits read row-major (imagehash's hex string order) in an int64.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_HASH_SIZE = 8
_IMG_SIZE = 32
# scipy.fftpack.dct type II (unnormalised): y[k] = 2 * sum_n x[n] cos(pi k (2n + 1) / 2N); low 8 rows.
_DCT = 2.0 * np.cos(np.pi * np.outer(np.arange(_HASH_SIZE), 2 * np.arange(_IMG_SIZE) + 1) / (2 * _IMG_SIZE))
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def to_grayscale(image: Image.Image) -> Image.Image:
    """8-bit grayscale of any mode; 16/32-bit integer images are scaled, not clipped, to 0-255."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    if image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
        return Image.fromarray(scaled.astype(np.uint8))
    return image.convert("L")


def phash_int(image: Image.Image) -> int:
    """imagehash.phash(image) as a signed 64-bit integer (same bits, row-major, first bit highest)."""
    pixels = np.asarray(to_grayscale(image).resize((_IMG_SIZE, _IMG_SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T).ravel()
    middle = np.partition(low, (31, 32))[31:33]
    bits = low > (middle[0] + middle[1]) / 2  # np.median of 64 values, without its overhead
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits], initial=np.uint64(0)).astype(np.int64))
