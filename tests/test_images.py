"""Invalid-image detection and the pHash (bit-exact with imagehash) on images made in the test."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from rs5m.demo.web import bad_body, render_image
from rs5m.phash import phash_int, to_grayscale
from rs5m.pub11.images_part import classify_resize_failure, inspect_image

MAX_PIXELS = 50_000_000


def _reference(image: Image.Image) -> int:
    return int(np.uint64(int(str(imagehash.phash(image)), 16)).astype(np.int64))


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_phash_matches_imagehash_bit_for_bit():
    rng = np.random.default_rng(5)
    images = [Image.open(io.BytesIO(render_image("rs", n, None))) for n in range(12)]
    images += [Image.open(io.BytesIO(render_image("photo", n, 2))) for n in range(12)]
    images += [Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)) for _ in range(40)]
    images += [Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).convert("P")]
    hashes = [phash_int(image) for image in images]
    assert hashes == [_reference(image) for image in images]
    assert len(set(hashes)) == len(hashes)
    assert any(h < 0 for h in hashes)  # the top bit maps onto the sign, as stored in int64


@pytest.mark.parametrize(
    "case, reason",
    [
        ("corrupt", "invalid_decode"),
        ("truncated", "invalid_decode"),
        ("html", "invalid_decode"),
        ("empty", "invalid_empty"),
        ("huge", "invalid_too_many_pixels"),
        ("tiny", "invalid_too_small"),
        ("cmyk", None),
        ("16bit", None),
        ("palette", None),
        ("alpha", None),
        ("animated", None),
        ("exif-rotated", None),
    ],
)
def test_inspect_image_on_bad_inputs(case, reason):
    _, body = bad_body(case)
    got_reason, detail, width, height, phash = inspect_image(body, MAX_PIXELS, 32)
    assert got_reason == reason, detail
    if reason is None:
        assert phash != 0 and width >= 32 and height >= 32


def test_exif_rotation_is_applied_to_the_size():
    reason, _, width, height, _ = inspect_image(bad_body("exif-rotated")[1], MAX_PIXELS, 32)
    assert reason is None and (width, height) == (96, 160)


def test_pixel_cap_is_the_configured_one():
    body = _jpeg(Image.new("RGB", (300, 200), (10, 120, 40)))
    assert inspect_image(body, 60_000, 32)[0] is None
    reason, detail, *_ = inspect_image(body, 59_999, 32)
    assert reason == "invalid_too_many_pixels" and detail == "300x200"


def test_min_side_boundary():
    body = _jpeg(Image.new("RGB", (32, 500), (10, 120, 40)))
    assert inspect_image(body, MAX_PIXELS, 32)[0] is None
    assert inspect_image(body, MAX_PIXELS, 33)[0] == "invalid_too_small"


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    gray = np.asarray(to_grayscale(Image.fromarray(ramp)))
    assert gray.min() == 0 and gray.max() == (64 * 64 - 1) * 16 >> 8
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    reason, _, _, _, phash = inspect_image(buffer.getvalue(), MAX_PIXELS, 32)
    assert reason is None and phash == phash_int(Image.fromarray((ramp >> 8).astype(np.uint8)))


def test_cmyk_hash_close_to_its_rgb_source():
    rgb = Image.open(io.BytesIO(render_image("rs", 3, None)))
    reason, _, width, height, cmyk_hash = inspect_image(_jpeg(rgb.convert("CMYK")), MAX_PIXELS, 32)
    assert reason is None and (width, height) == rgb.size
    assert bin((cmyk_hash ^ phash_int(rgb)) & (2**64 - 1)).count("1") <= 4


@pytest.mark.parametrize(
    "message, reason",
    [
        ("Image decoding error", "invalid_decode"),
        (
            "OpenCV(5.0.0) loadsave.cpp:1291: error: (-215:Assertion failed) !buf.empty() in function 'imdecode_'",
            "invalid_empty",
        ),
        (
            "OpenCV(5.0.0) loadsave.cpp:79: error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS",
            "invalid_too_many_pixels",
        ),
        ("image area too large", "invalid_too_many_pixels"),
        ("image too small", "invalid_too_small"),
        (None, "invalid_decode"),
    ],
)
def test_classify_resize_failure(message, reason):
    assert classify_resize_failure(message) == reason
