"""Reduced-scale JPEG decoding for the GPU stages' loaders (rs5m.reduced_decode)."""

import io

import numpy as np
from PIL import Image

from rs5m.demo.web import render_aerial
from rs5m.pub11.score_part import ShardImages
from rs5m.reduced_decode import input_side, open_rgb


def _jpeg(image, fmt="JPEG"):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_large_jpeg_decodes_at_the_smallest_scale_that_keeps_the_input_side():
    body = _jpeg(render_aerial(1).resize((1000, 700)))
    image = open_rgb(body, 224)
    assert image.mode == "RGB" and min(image.size) >= 224 and image.size == (500, 350)  # 1/2: 1/4 would be 175 px
    assert open_rgb(body, 80).size == (125, 88)  # 1/8: 88 px >= 80
    assert open_rgb(body, None).size == (1000, 700)
    # Pixels: the reduced decode is close to a full decode downscaled.
    full = np.asarray(open_rgb(body).resize((500, 350), Image.BILINEAR), dtype=float)
    assert np.abs(full - np.asarray(image, dtype=float)).mean() < 6


def test_small_jpegs_and_other_formats_decode_in_full_and_identically():
    small = _jpeg(render_aerial(2))  # 320 px < 2 x 224
    assert np.array_equal(np.asarray(open_rgb(small, 224)), np.asarray(Image.open(io.BytesIO(small)).convert("RGB")))
    png = _jpeg(render_aerial(3).resize((900, 900)), "PNG")
    assert open_rgb(png, 224).size == (900, 900)


def test_input_side_reads_model_size_forms():
    assert input_side(224, (448, 448), {"height": 364, "width": 364}) == 448
    assert input_side(64, 32) == 64
    from transformers import BlipImageProcessor

    assert input_side(BlipImageProcessor(size={"height": 364, "width": 364}).size, 224) == 364  # a SizeDict


def test_shard_loader_applies_the_side(tmp_path):
    class Reader:
        def read(self, location):
            return location

        def close(self):
            pass

    body = _jpeg(render_aerial(4).resize((960, 960)))
    dataset = ShardImages([body, b"not an image"], [lambda im: im.size], side=224)
    dataset.reader = Reader()
    assert dataset[0] == ((240, 240), True)
    assert dataset[1] == ((8, 8), False)
    dataset.side = None
    assert dataset[0] == ((960, 960), True)
