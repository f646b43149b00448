"""Download stage, images of more than 8 bits per sample: stored as the picture the server sent.

img2dataset decodes with `cv2.IMREAD_UNCHANGED` and encodes with `cv2.imencode('.jpg')`, which
clips every value above 255: a full-range 16-bit PNG or TIFF ends as a white frame, kept, and all
such frames hash alike in the pHash dedup. NormalisingResizer is img2dataset's Resizer with one
step before it: an image whose samples are wider than 8 bits (16-bit PNG, TIFF, float) is
contrast-normalised to 8 bits (its own min..max stretched to 0..255 over the colour channels
together, so colours keep their balance; alpha scaled by its type's range) and handed on as a
lossless 8-bit PNG. 8-bit images (nearly all) pass untouched: a header check decides, without
decoding them twice.

rs5m.pub11.download_part puts it in place of img2dataset's Resizer in the img2dataset process; the instance
travels to spawned workers by reference to this module, so they use it too.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from img2dataset.resizer import Resizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Formats that are 8 bits per sample by construction: never decoded here.
EIGHT_BIT_MAGIC = (b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def may_be_wide(data: bytes) -> bool:
    """False for an image that cannot hold more than 8 bits per sample (JPEG, GIF, BMP, WebP,
    8-bit PNG); True for one that may (16-bit PNG, TIFF, anything else a decoder accepts)."""
    if data.startswith(PNG_SIGNATURE):
        return len(data) > 24 and data[24] > 8  # IHDR bit depth
    if data.startswith(EIGHT_BIT_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return False
    return True


TILE_ELEMENTS = 1 << 16  # samples converted at a time: temporaries stay about 3 MiB whatever the image


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8 bits per sample: uint8 as it is; wider integers and floats contrast-normalised (min..max
    of the colour samples to 0..255; a fourth channel, alpha, scaled by its type's range).

    Memory: the output plus about 3 MiB, whatever the image (it is written a band of rows at a time).
    Integer samples use exact integer arithmetic, rounded half to even as np.rint rounds the float
    formula (v - low) * 255 / (high - low); floats use that formula.
    """
    if pixels.dtype == np.uint8:
        return pixels
    alpha = None
    colour = pixels
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        colour, alpha = pixels[..., :3], pixels[..., 3]
    out = np.empty(pixels.shape, np.uint8)
    out_colour = out[..., :3] if alpha is not None else out
    low, high = _range(colour)
    _scale_into(colour, out_colour, low, high)
    if alpha is not None:
        if np.issubdtype(alpha.dtype, np.integer):
            _scale_into(alpha, out[..., 3], 0, np.iinfo(alpha.dtype).max)
        else:
            _scale_into(alpha, out[..., 3], 0.0, 1.0)
    return out


def _bands(values: np.ndarray):
    """Slices of the first axis holding about TILE_ELEMENTS samples each."""
    rows = values.shape[0] if values.ndim else 1
    step = max(1, TILE_ELEMENTS // max(1, values.size // max(1, rows)))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _range(values: np.ndarray):
    """(min, max), band by band (a reduction over a strided view may copy it whole)."""
    lows, highs = zip(*((band.min(), band.max()) for band in (values[b] for b in _bands(values))))
    return min(lows), max(highs)


def _scale_into(values: np.ndarray, out: np.ndarray, low, high) -> None:
    """out = rint((values - low) * 255 / (high - low)) clipped to 0..255 (zeros when high <= low),
    band by band of rows."""
    exact = np.issubdtype(values.dtype, np.integer) and values.dtype.itemsize <= 4
    if exact:
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if not high > low:
        out[...] = 0
        return
    for rows in _bands(values):
        band = values[rows]
        if exact:
            # numerator / span, rounded half to even, in int64 (255 * 2^32 fits)
            numerator = band.astype(np.int64)
            numerator -= low
            numerator *= 255
            span = high - low
            quotient, remainder = np.divmod(numerator, span)
            remainder *= 2
            quotient += (remainder > span) | ((remainder == span) & (quotient % 2 == 1))
            np.clip(quotient, 0, 255, out=quotient)
            out[rows] = quotient
        else:
            scaled = band.astype(np.float64)
            scaled -= low
            scaled *= 255.0 / (high - low)
            np.rint(scaled, out=scaled)
            np.clip(scaled, 0, 255, out=scaled)
            out[rows] = scaled


def normalised_stream(img_stream):
    """The stream as given, or, for an image of more than 8 bits per sample, a lossless 8-bit PNG
    of it contrast-normalised (to_uint8). An undecodable image is passed on for img2dataset to
    report."""
    img_stream.seek(0)
    data = img_stream.read()
    img_stream.seek(0)
    if not may_be_wide(data):
        return img_stream
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype == np.uint8:
        return img_stream
    ok, png = cv2.imencode(".png", to_uint8(pixels))
    if not ok:
        raise ValueError("could not re-encode a 16-bit image as 8 bits")
    return io.BytesIO(png.tobytes())


class NormalisingResizer(Resizer):
    """img2dataset's Resizer, fed 8 bits per sample (see the module docstring)."""

    def __call__(self, img_stream, blurring_bbox_list=None):
        if not self.disable_all_reencoding:
            try:
                img_stream = normalised_stream(img_stream)
            except Exception as error:  # noqa: BLE001 - img2dataset's contract: an error string, not a raise
                return None, None, None, None, None, str(error)
        return super().__call__(img_stream, blurring_bbox_list)


def install() -> None:
    """Make img2dataset's download() build a NormalisingResizer (call in the img2dataset process)."""
    import importlib

    importlib.import_module("img2dataset.main").Resizer = NormalisingResizer
