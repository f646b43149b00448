"""The confirmation of a candidate image pair that a perceptual hash (or an embedding) proposed:
the eval-set decontamination and the near-duplicate dedup drop a sample only for a confirmed pair.

The score (confirmation_score): both images as confirm_thumb makes them (grayscale, `size` px, minus
their blur: the detail below the pHash's 8 x 8 layout), aligned over the candidate's rotations/flips,
nine scales 0.95-1.05 and shifts; at the best normalised cross-correlation the score is the smallest
correlation of the four quadrants. Its tail on distinct aerial images is measured in
benchmarks/bench_decontamination_realistic.py (README, "Decontamination in two stages").
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from rs5m.tar import MemberReader, index_tar

logger = logging.getLogger(__name__)

CONFIRM_MARGIN = 0.08  # the template is the eval image less 8 % at each edge (crops of up to 5 % fit)
# Template scales, 0.95 to 1/0.95 in nine geometric steps of 1.3 %: a crop of <= 5 % either way
# (steps of 2.5 % lose up to a third of a crop's score).
CONFIRM_SCALES = tuple(round(0.95 * (1 / 0.95**2) ** (k / 8), 4) for k in range(9))


def confirm_thumb(image: Image.Image, size: int) -> np.ndarray:
    """The image as the confirmation compares it: grayscale, `size` x `size` (area resampling),
    minus its Gaussian blur (sigma size/40): the detail finer than the pHash's 8 x 8 layout."""
    import cv2

    gray = np.asarray(image.convert("L"), dtype=np.float32)
    thumb = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return thumb - cv2.GaussianBlur(thumb, (0, 0), size / 40)


def dihedral_array(array: np.ndarray, variant: int) -> np.ndarray:
    """DIHEDRAL[variant] applied to a (rows, cols) array, as PIL's transpose does to an image."""
    out = (
        array,
        np.rot90(array, 1),
        np.rot90(array, 2),
        np.rot90(array, 3),
        array[:, ::-1],
        array[::-1],
        array.T,
        np.rot90(array, 2).T,
    )[variant]
    return np.ascontiguousarray(out)


def _quadrant_ncc(patch: np.ndarray, template: np.ndarray) -> float:
    """The smallest normalised cross-correlation of the four quadrants of two aligned arrays."""
    half_r, half_c = template.shape[0] // 2, template.shape[1] // 2
    scores = []
    for rows in (slice(0, half_r), slice(half_r, 2 * half_r)):
        for cols in (slice(0, half_c), slice(half_c, 2 * half_c)):
            a = patch[rows, cols] - patch[rows, cols].mean()
            b = template[rows, cols] - template[rows, cols].mean()
            norm = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
            scores.append(float((a * b).sum()) / norm if norm > 0 else 0.0)
    return min(scores)


def confirmation_score(dataset: np.ndarray, eval_thumb: np.ndarray, variants: Sequence[int]) -> tuple[float, int]:
    """(score, variant) of two confirm_thumb arrays. Alignment: the eval image in each of `variants`
    (DIHEDRAL indices), its centre at CONFIRM_SCALES, slid over the dataset image; the best
    normalised cross-correlation fixes variant, scale and shift. Score: the smallest correlation of
    the four quadrants of the aligned pair. A copy agrees in every quadrant; two distinct images
    that share a layout (a shoreline, field stripes) rarely do, which makes the score's tail on
    distinct pairs much thinner than the global correlation's."""
    import cv2

    size = dataset.shape[0]
    margin = round(size * CONFIRM_MARGIN)
    best, best_variant, aligned = -2.0, int(variants[0]), None
    for variant in variants:
        template = dihedral_array(eval_thumb, int(variant))[margin : size - margin, margin : size - margin]
        for scale in CONFIRM_SCALES:
            side = round(template.shape[0] * scale)
            scaled = template if side == template.shape[0] else cv2.resize(template, (side, side))
            _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(dataset, scaled, cv2.TM_CCOEFF_NORMED))
            if score > best:
                best, best_variant, aligned = score, int(variant), (scaled, x, y)
    scaled, x, y = aligned
    return _quadrant_ncc(dataset[y : y + scaled.shape[0], x : x + scaled.shape[1]], scaled), best_variant


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
