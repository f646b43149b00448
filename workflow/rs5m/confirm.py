"""The confirmation of a candidate image pair that a perceptual hash (or an embedding) proposed:
the eval-set decontamination and the near-duplicate dedup drop a sample only for a confirmed pair.

The two images are aligned once and then compared three ways (confirmation_score):
- detail: both images grayscale at `size` px, band-passed (a Gaussian blur of CONFIRM_SMOOTH of the
  side, minus the blur of CONFIRM_HIGHPASS of the side: the detail finer than the layout the pHash
  already compared; a band lower down when the smaller image has fewer pixels than the side),
  aligned over the candidate's rotations/flips, nine scales 0.95-1.05 and shifts; at the best
  normalised cross-correlation the score is the smallest correlation of the CONFIRM_GRID x
  CONFIRM_GRID blocks of the aligned pair. A copy agrees in every block; two distinct images that
  share a layout (a shoreline, field stripes, dunes) rarely do everywhere.
- colour: the largest difference of the mean CIELAB a* and b* (brightness-free) of the COLOR_GRID x
  COLOR_GRID blocks of the aligned pair; a copy keeps its colours where they are (JPEG, resizing,
  brightness), distinct look-alikes mostly do not.
- layout: the lightness of the LAYOUT_GRID x LAYOUT_GRID blocks of the aligned pair (the layout that
  the pHash compares only by the signs of its 8 x 8 frequencies), fitted one onto the other by a
  gain and an offset (a brightness change); the RMS of what the fit leaves, relative to the spread of
  the dataset image's blocks (at least LAYOUT_FLOOR grey levels: a flat image has no layout to
  compare). A copy leaves almost nothing; a distinct scene whose detail happens to align does not
  share the brightness of every part of the image.
A pair is confirmed when the detail score reaches the stage's threshold, the colour difference is at
most MAX_COLOR_DIFFERENCE and the layout difference at most MAX_LAYOUT_DIFFERENCE (is_confirmed).
The tails on distinct aerial images are measured in benchmarks/bench_decontamination_realistic.py
(README, "Decontamination in two stages").
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from rs5m.tar import MemberReader, index_tar

logger = logging.getLogger(__name__)

CONFIRM_MARGIN = 0.08  # the template is the eval image less 8 % at each edge (crops of up to 5 % fit)
# Template scales, 0.95 to 1/0.95 in nine geometric steps of 1.3 %: a crop of <= 5 % either way
# (steps of 2.5 % lose up to a third of a crop's score).
CONFIRM_SCALES = tuple(round(0.95 * (1 / 0.95**2) ** (k / 8), 4) for k in range(9))
CONFIRM_GRID = 4  # blocks per side whose smallest correlation is the score
CONFIRM_SMOOTH = 1.25 / 128  # finest band compared: blur sigma, a fraction of the side (1.25 px at 128)
CONFIRM_HIGHPASS = 1 / 20  # coarsest band compared: the blur subtracted, a fraction of the side
# An image smaller than the side holds no detail finer than its own pixels, and what it holds was
# softened by its resampling and compression: for a pair whose smaller image is `native` px, the fine
# blur grows by ratio squared and the coarse one by ratio, ratio = side / native up to MAX_UPSCALE
# (smaller images are compared as if they had side / MAX_UPSCALE px: a lower band would let distinct
# images of similar layout agree). A pair of images of at least the side keeps the band above.
MAX_UPSCALE = 1.7
COLOR_GRID = 4  # blocks per side of the colour check
# Largest a*/b* difference (CIELAB units) of two aligned blocks of a confirmed pair: planted copies
# differ by at most 4.7 (brightness 0.93 of saturated scenes), 99 % by <= 3.0; of the 1 % of distinct
# pHash-close aerial scenes that agree best in detail, 97 % differ by more.
MAX_COLOR_DIFFERENCE = 6.0
LAYOUT_GRID = 8  # blocks per side of the layout check
LAYOUT_FLOOR = 2.5  # grey levels: the least spread of block lightness the layout difference is relative to
# Largest layout difference of a confirmed pair (a block correlation of ~0.9): planted copies leave at
# most 0.17 of their layout's spread unexplained (99 % <= 0.12); no pair of distinct real tiles is within.
MAX_LAYOUT_DIFFERENCE = 0.45


class ConfirmThumb(NamedTuple):
    """An image as the confirmation compares it (confirm_thumb)."""

    gray: np.ndarray  # grayscale, size x size, float32 (area resampling)
    native: int  # the image's shorter side in pixels: the finest detail it holds
    chroma: np.ndarray  # CIELAB a*, b*, size x size x 2, float32


class Confirmation(NamedTuple):
    score: float  # smallest block correlation of the aligned detail, -1..1
    variant: int  # the DIHEDRAL index of the eval image that aligned best
    color_difference: float  # largest a*/b* difference of the aligned pair's COLOR_GRID x COLOR_GRID blocks
    layout_difference: float  # unexplained spread of the aligned pair's block lightness (layout_difference)


def confirm_thumb(image: Image.Image, size: int) -> ConfirmThumb:
    """The image as the confirmation compares it: grayscale and CIELAB a*/b* at `size` x `size` (area
    resampling), and its native shorter side."""
    import cv2

    rgb = image.convert("RGB")
    gray = np.asarray(rgb.convert("L"), dtype=np.float32)
    thumb = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    small = cv2.resize(np.asarray(rgb), (size, size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    return ConfirmThumb(thumb, min(image.size), np.ascontiguousarray(lab[..., 1:]))


def detail(thumb: ConfirmThumb, native: int) -> np.ndarray:
    """The band of `thumb` compared when the smaller image of the pair is `native` px: blurred by
    CONFIRM_SMOOTH of the side, minus its blur by CONFIRM_HIGHPASS of the side; both moved down
    where `native` is below the side (MAX_UPSCALE)."""
    import cv2

    size = thumb.gray.shape[0]
    ratio = min(MAX_UPSCALE, max(1.0, size / max(1, native)))
    fine, coarse = CONFIRM_SMOOTH * size * ratio**2, CONFIRM_HIGHPASS * size * ratio
    return cv2.GaussianBlur(thumb.gray, (0, 0), fine) - cv2.GaussianBlur(thumb.gray, (0, 0), coarse)


def dihedral_array(array: np.ndarray, variant: int) -> np.ndarray:
    """DIHEDRAL[variant] applied to a (rows, cols[, channels]) array, as PIL's transpose does to an image."""
    out = (
        array,
        np.rot90(array, 1),
        np.rot90(array, 2),
        np.rot90(array, 3),
        array[:, ::-1],
        array[::-1],
        np.swapaxes(array, 0, 1),
        np.swapaxes(np.rot90(array, 2), 0, 1),
    )[variant]
    return np.ascontiguousarray(out)


def block_ncc(patch: np.ndarray, template: np.ndarray, grid: int = CONFIRM_GRID) -> float:
    """The smallest normalised cross-correlation of the grid x grid blocks of two aligned arrays."""
    step_r, step_c = template.shape[0] // grid, template.shape[1] // grid
    scores = []
    for i in range(grid):
        for j in range(grid):
            block = (slice(i * step_r, (i + 1) * step_r), slice(j * step_c, (j + 1) * step_c))
            a = patch[block] - patch[block].mean()
            b = template[block] - template[block].mean()
            norm = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
            scores.append(float((a * b).sum()) / norm if norm > 0 else 0.0)
    return min(scores)


def block_means(array: np.ndarray, grid: int) -> np.ndarray:
    """The means of the grid x grid blocks of a (rows, cols[, channels]) array (area resampling)."""
    import cv2

    return cv2.resize(array, (grid, grid), interpolation=cv2.INTER_AREA)


def layout_difference(dataset: np.ndarray, eval_: np.ndarray) -> float:
    """RMS residual of the dataset blocks' lightness after the least-squares fit gain * eval + offset
    (gain >= 0: no copy inverts its brightness), relative to the spread of the dataset blocks, at
    least LAYOUT_FLOOR."""
    a, b = dataset.ravel().astype(np.float64), eval_.ravel().astype(np.float64)
    b_centred = b - b.mean()
    spread_b = float((b_centred * b_centred).sum())
    gain = max(0.0, float(((a - a.mean()) * b_centred).sum()) / spread_b) if spread_b > 0 else 0.0
    residual = a - a.mean() - gain * b_centred
    return math.sqrt(float((residual * residual).mean())) / max(float(a.std()), LAYOUT_FLOOR)


def confirmation_score(dataset: ConfirmThumb, eval_thumb: ConfirmThumb, variants: Sequence[int]) -> Confirmation:
    """The Confirmation of two confirm_thumbs. Alignment: the eval image's detail in each of
    `variants` (DIHEDRAL indices), its centre at CONFIRM_SCALES, slid over the dataset image's; the
    best normalised cross-correlation fixes variant, scale and shift. Score: block_ncc of the
    aligned pair. Colour difference: the largest |a* - a*'| or |b* - b*'| of the aligned pair's
    COLOR_GRID x COLOR_GRID blocks. Layout difference: layout_difference of its LAYOUT_GRID x
    LAYOUT_GRID blocks' lightness (the undetailed grayscale)."""
    import cv2

    native = min(dataset.native, eval_thumb.native)
    target, source = detail(dataset, native), detail(eval_thumb, native)
    size = target.shape[0]
    margin = round(size * CONFIRM_MARGIN)
    best, best_variant, aligned = -2.0, int(variants[0]), None
    for variant in variants:
        template = dihedral_array(source, int(variant))[margin : size - margin, margin : size - margin]
        for scale in CONFIRM_SCALES:
            side = round(template.shape[0] * scale)
            scaled = template if side == template.shape[0] else cv2.resize(template, (side, side))
            _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(target, scaled, cv2.TM_CCOEFF_NORMED))
            if score > best:
                best, best_variant, aligned = score, int(variant), (scaled, x, y)
    scaled, x, y = aligned
    region = (slice(y, y + scaled.shape[0]), slice(x, x + scaled.shape[1]))
    score = block_ncc(target[region], scaled)
    # The eval image's centre (before scaling) covers the dataset image's aligned region.
    centre = (slice(margin, size - margin), slice(margin, size - margin))
    color = float(
        np.abs(
            block_means(dataset.chroma[region], COLOR_GRID)
            - block_means(dihedral_array(eval_thumb.chroma, best_variant)[centre], COLOR_GRID)
        ).max()
    )
    layout = layout_difference(
        block_means(dataset.gray[region], LAYOUT_GRID),
        block_means(dihedral_array(eval_thumb.gray, best_variant)[centre], LAYOUT_GRID),
    )
    return Confirmation(score, best_variant, color, layout)


def is_confirmed(confirmation: Confirmation, threshold: float) -> bool:
    """A pair is confirmed when its detail score reaches `threshold` and its colours and layout agree."""
    return (
        confirmation.score >= threshold
        and confirmation.color_difference <= MAX_COLOR_DIFFERENCE
        and confirmation.layout_difference <= MAX_LAYOUT_DIFFERENCE
    )


def _tar_index(tar: str) -> dict:
    """index_tar of `tar`, kept for the next batches of the job (they touch the same tars) while the
    file is unchanged; {} for a tar that cannot be read (logged once), so its members are unreadable."""
    try:
        stat = os.stat(tar)
    except OSError as error:
        logger.warning("cannot index %s: %s", tar, error)
        return {}
    return _cached_tar_index(tar, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _cached_tar_index(tar: str, mtime_ns: int, size: int) -> dict:
    try:
        return index_tar(tar)
    except Exception as error:  # noqa: BLE001 - an unreadable tar leaves its candidates unconfirmed
        logger.warning("cannot index %s: %s", tar, error)
        return {}


def open_images(locations: Sequence[str]) -> dict[str, Image.Image | None]:
    """The images at `locations` ("tar::member", turned upright by its EXIF orientation as the image
    stage hashes it, or a file path, as the feature jobs read it), None where unreadable; a tar is
    indexed once for all the calls of a job (the 64 tars used last)."""
    out: dict[str, Image.Image | None] = {}
    members = sorted({loc for loc in locations if "::" in loc})
    reader = MemberReader()
    for loc in members:
        tar, member = loc.split("::", 1)
        try:
            # Upright as the image stage hashed it (EXIF orientation applied), so the pHash variants hold.
            image = Image.open(io.BytesIO(reader.read(_tar_index(tar)[member])))
            out[loc] = ImageOps.exif_transpose(image).convert("RGB")
        except Exception as error:  # noqa: BLE001 - an unreadable image leaves its candidates unconfirmed
            logger.warning("cannot read %s: %s", loc, error)
            out[loc] = None
    reader.close()
    for loc in sorted({loc for loc in locations if "::" not in loc}):
        try:
            with Image.open(loc) as image:
                out[loc] = image.convert("RGB")
        except Exception as error:  # noqa: BLE001
            logger.warning("cannot read %s: %s", loc, error)
            out[loc] = None
    return out
