"""Images of more than 8 bits per sample are stored as the picture the server sent, contrast-normalised,
not clipped to a white frame, and no longer all hash alike (issue 14, item 2). Real img2dataset
downloads from loopback servers only (127.0.0.1)."""

from __future__ import annotations

import io
import tarfile
import threading
import tracemalloc
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from schema_defaults import download_settings

from rs5m.columns import make_uid
from rs5m.demo.web import DemoWebServer
from rs5m.pub11.bit_depth import may_be_wide, normalised_stream, to_uint8
from rs5m.pub11.download_part import download_part, read_status
from rs5m.pub11.images_part import inspect_part
from rs5m.pub11.settings import ImageSettings

SETTINGS = download_settings(
    thread_count=4,
    timeout=5,
    retries=0,
    max_pixels=50_000_000,
    allowed_networks=["127.0.0.1/32"],
    per_host_rate=1000,
    per_host_burst=100,
)


def png16(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels.astype(np.uint16))
    assert ok
    return data.tobytes()


def _scene(seed: int, channels: int) -> np.ndarray:
    """A 16-bit picture with structure (not a flat field), full range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:128]
    base = np.sin(x / (5 + seed)) * np.cos(y / (7 + 2 * seed)) + rng.normal(0, 0.05, (96, 128))
    base = (base - base.min()) / (base.max() - base.min())
    img = (base * 65535).astype(np.uint16)
    if channels == 3:
        img = np.dstack([img, img[::-1], np.roll(img, 17, axis=1)])
    return img


# 16-bit images the test server sends (beside the demo's /bad/16bit).
SERVED = {
    "/gray-a.png": png16(_scene(1, 1)),
    "/gray-b.png": png16(_scene(2, 1)),
    "/rgb48.png": png16(_scene(3, 3)),
    "/tiff16.tif": cv2.imencode(".tiff", _scene(4, 1))[1].tobytes(),
    "/plain8.png": cv2.imencode(".png", (_scene(5, 1) >> 8).astype(np.uint8))[1].tobytes(),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the base class names it so
        data = SERVED.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/tiff" if self.path.endswith(".tif") else "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_to_uint8_stretches_instead_of_clipping():
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    out = to_uint8(ramp)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.abs(out.astype(int) - (ramp >> 8).astype(int)).max() <= 1
    narrow = np.full((4, 4), 1000, np.uint16)
    narrow[0, 0] = 3000
    assert set(np.unique(to_uint8(narrow))) == {0, 255}  # contrast-normalised
    rgba = np.dstack([ramp, ramp, ramp, np.full_like(ramp, 65535)])
    assert (to_uint8(rgba)[..., 3] == 255).all()
    eight = (ramp >> 8).astype(np.uint8)
    assert to_uint8(eight) is eight


def _float_formula(pixels: np.ndarray) -> np.ndarray:
    """to_uint8 as it was first written (float64 over the whole image): the reference for its outputs."""
    alpha, colour = None, pixels
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        colour, alpha = pixels[..., :3], pixels[..., 3]
    values = colour.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    out = np.rint(scaled).clip(0, 255).astype(np.uint8)
    if alpha is not None:
        top = float(np.iinfo(alpha.dtype).max) if np.issubdtype(alpha.dtype, np.integer) else 1.0
        out = np.dstack([out, np.rint(alpha.astype(np.float64) * (255.0 / top)).clip(0, 255).astype(np.uint8)])
    return out


@pytest.mark.parametrize("shape", [(700, 600), (700, 600, 3), (700, 600, 4), (3, 5, 4)])
@pytest.mark.parametrize("span", [65535, 1000, 2, 1, 510])
def test_to_uint8_outputs_as_the_float_formula(shape, span):
    rng = np.random.default_rng(span)
    pixels = (rng.integers(0, span + 1, shape) + 7).astype(np.uint16)
    assert np.array_equal(to_uint8(pixels), _float_formula(pixels))
    floats = rng.normal(0, 3, shape).astype(np.float32)
    assert np.array_equal(to_uint8(floats), _float_formula(floats))
    for scene in (_scene(1, 1), _scene(3, 3)):
        assert np.array_equal(to_uint8(scene), _float_formula(scene))


def test_normalising_a_large_16bit_image_costs_a_small_multiple_of_its_8bit_output():
    """A 16-bit RGBA PNG of zeros (a small file) once cost ~97 MiB per megapixel in float64 temporaries."""
    pixels = np.zeros((2000, 1500, 4), np.uint16)
    data = png16(pixels)
    output_size = pixels.size  # bytes of the 8-bit result
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = to_uint8(pixels)
        peak = tracemalloc.get_traced_memory()[1] - base
        assert out.shape == pixels.shape and out.dtype == np.uint8 and not out.any()
        del out
        assert peak < 1.5 * output_size, peak / output_size  # the output and a few bands of temporaries
        # the whole step, decoding included (the decoded 16-bit image is itself 2x the output)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        stream = normalised_stream(io.BytesIO(data))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert cv2.imdecode(np.frombuffer(stream.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert peak < 4 * output_size, peak / output_size


def test_only_possibly_wide_formats_are_decoded_twice():
    assert may_be_wide(SERVED["/gray-a.png"]) and may_be_wide(SERVED["/tiff16.tif"])
    assert not may_be_wide(SERVED["/plain8.png"])
    assert not may_be_wide(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())


@pytest.fixture(scope="module", params=[1, 2], ids=["inline", "spawned-workers"])
def downloaded(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("bitdepth")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = {}
    try:
        with DemoWebServer(stall_seconds=30) as demo:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            demo_url = f"{demo.url}/bad/16bit"
            with opener.open(demo_url, timeout=10) as response:
                served[demo_url] = response.read()
            for path, data in SERVED.items():
                served[f"http://127.0.0.1:{server.server_address[1]}{path}"] = data
            urls = list(served)
            uids = [make_uid("laion2b", url) for url in urls]
            pq.write_table(
                pa.table({"uid": uids, "source": ["laion2b"] * len(urls), "url": urls}), root / "urls.parquet"
            )
            download_part(
                str(root / "urls.parquet"),
                str(root / "0000"),
                str(root / "0000.stats.json"),
                str(root / "0000.drops.parquet"),
                threads=request.param,
                settings=SETTINGS,
            )
    finally:
        server.shutdown()
        server.server_close()
    inspect_part(
        str(root / "0000"),
        str(root / "images.parquet"),
        str(root / "images.stats.json"),
        str(root / "images.drops.parquet"),
        ImageSettings(max_pixels=50_000_000, min_side=32, phash_exact=True),
        threads=1,
    )
    stored = {}
    for tar_path in sorted((root / "0000").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    stored[member.name[:-4]] = tar.extractfile(member).read()
    status = {r["uid"]: r for r in read_status(root / "0000").to_pylist()}
    by_url = {url: stored.get(status[uid]["key"]) for url, uid in zip(urls, uids) if uid in status}
    images = {r["uid"]: r for r in pq.read_table(root / "images.parquet").to_pylist()}
    phash = {url: images[uid]["phash"] for url, uid in zip(urls, uids) if uid in images}
    return served, by_url, phash


def test_stored_picture_is_the_served_one_contrast_normalised(downloaded):
    served, stored, _ = downloaded
    for url, data in served.items():
        assert stored.get(url), f"{url} was not kept"
        original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        expected = to_uint8(original)
        if expected.ndim == 3:
            expected = expected[..., ::-1]  # OpenCV's BGR to RGB
        picture = np.asarray(Image.open(io.BytesIO(stored[url])).convert("RGB" if expected.ndim == 3 else "L"))
        assert picture.shape == expected.shape, url
        assert picture.std() > 20, f"{url}: stored as a flat frame (mean {picture.mean():.0f})"
        # The same picture up to JPEG's losses (quality 95; chroma subsampling on noisy colour).
        difference = np.abs(picture.astype(int) - expected.astype(int))
        assert difference.mean() < 6, f"{url}: mean difference {difference.mean():.1f} from the served picture"
        assert np.corrcoef(picture.ravel(), expected.ravel())[0, 1] > 0.97, url


def test_wide_images_no_longer_hash_alike(downloaded):
    served, _, phash = downloaded
    wide = [url for url in served if not url.endswith("/plain8.png")]
    hashes = [phash[url] for url in wide]
    assert len(set(hashes)) == len(hashes), hashes
