"""images.phash_exact: false (reduced-scale JPEG decode for the hash) against the exact path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rs5m.demo.web import bad_body, near_duplicate, render_aerial, render_image
from rs5m.pub11.images_part import inspect_image

MAX_PIXELS = 50_000_000
CASES = [
    "corrupt",
    "truncated",
    "html",
    "empty",
    "huge",
    "tiny",
    "cmyk",
    "16bit",
    "palette",
    "alpha",
    "animated",
    "exif-rotated",
]


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def bits(a: int, b: int) -> int:
    return bin((a ^ b) & (2**64 - 1)).count("1")


def large_scene(n: int, size=(1200, 900)) -> Image.Image:
    return render_aerial(n).resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("case", CASES)
def test_fast_path_gives_the_same_verdict_and_size(case):
    body = bad_body(case)[1]
    exact, fast = inspect_image(body, MAX_PIXELS, 32, True), inspect_image(body, MAX_PIXELS, 32, False)
    assert fast[0] == exact[0] and fast[2:4] == exact[2:4]
    if exact[0] is None:
        assert bits(exact[4], fast[4]) <= 4


def test_fast_hash_is_exact_for_other_formats():
    buffer = io.BytesIO()
    large_scene(1).save(buffer, "PNG")
    assert inspect_image(buffer.getvalue(), MAX_PIXELS, 32, False) == inspect_image(
        buffer.getvalue(), MAX_PIXELS, 32, True
    )


def test_reduced_scale_keeps_full_size_and_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: displayed 900 x 1200
    body = _jpeg(large_scene(2), exif=exif)
    exact, fast = inspect_image(body, MAX_PIXELS, 32, True), inspect_image(body, MAX_PIXELS, 32, False)
    assert exact[2:4] == fast[2:4] == (900, 1200)
    assert bits(exact[4], fast[4]) <= 4
    assert inspect_image(body, MAX_PIXELS, 901, False)[0] == "invalid_too_small"  # min_side on the full size
    assert inspect_image(body, 1200 * 900 - 1, 32, False)[0] == "invalid_too_many_pixels"


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_large_jpeg_refused_at_reduced_scale_too(fraction):
    body = _jpeg(large_scene(3), quality=90)
    cut = body[: int(len(body) * fraction)]
    assert inspect_image(cut, MAX_PIXELS, 32, True)[0] == "invalid_decode"
    assert inspect_image(cut, MAX_PIXELS, 32, False)[0] == "invalid_decode"


def test_fast_hashes_close_to_exact_and_find_the_planted_near_duplicates():
    gaps, found = [], 0
    for n in range(20):
        scene = large_scene(n, (640 + 16 * n, 480)) if n % 2 else render_aerial(n)
        body = _jpeg(scene, quality=85)
        exact, fast = inspect_image(body, MAX_PIXELS, 32, True)[4], inspect_image(body, MAX_PIXELS, 32, False)[4]
        gaps.append(bits(exact, fast))
        found += all(
            bits(fast, inspect_image(near_duplicate(scene, copy), MAX_PIXELS, 32, False)[4]) <= 4 for copy in range(3)
        )
    assert max(gaps) <= 4 and np.mean(gaps) < 1.5
    assert found == 20
    # Distinct scenes stay apart.
    hashes = [inspect_image(render_image("rs", n, None), MAX_PIXELS, 32, False)[4] for n in range(20)]
    assert min(bits(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]) > 4
