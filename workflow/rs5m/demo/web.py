"""Demo web: a loopback HTTP server (and forward proxy) that renders the demo's images from their URL path.

Serves only 127.0.0.1 and never opens a connection of its own, so nothing it answers can leave the machine.

The download stage points img2dataset's `http_proxy`/`https_proxy` at this server, so the demo
metadata keeps realistic URLs (`http://demo.rs5m.test/...`) that still pass the URL safety filter;
the host is ignored and the answer depends only on the path. Tests may also call it directly
(`http://127.0.0.1:<port>/<path>`). HTTPS tunnels (CONNECT) are refused with 502.

Paths (n, k: non-negative integers; every answer is deterministic, the same bytes each time):
- `/img/rs/<n>.jpg`            aerial-looking image (fields, roads, buildings, water), seeded by n
- `/img/rs/<n>.jpg?copy=<k>`   the same scene, slightly resized and re-encoded: a near-duplicate
- `/img/photo/<n>.jpg`         a ground-level "photo" (sky, horizon, trees): non-RS content
- `/img/photo/<n>.jpg?copy=<k>` near-duplicate of the photo
- `/flaky/rs/<n>.jpg`          503 on the first request of this path, then `/img/rs/<n>.jpg`
                               (exercises the retry of failed downloads; "first" is remembered
                               per server, or across servers in `state_dir` when given)
- `/bad/<case>` or `/bad/<case>.<ext>` (the extension is ignored), case one of BAD_CASES or an
  alias in BAD_ALIASES (`zero-bytes` = `empty`, `html-as-jpeg` = `html`, `bomb` = `huge`,
  `redirect` = `redirect-loop`, `timeout` = `stall`):
  - `corrupt`        JPEG start marker followed by random bytes (status 200, image/jpeg)
  - `truncated`      first half of a valid JPEG
  - `empty`          zero bytes
  - `html`           an HTML page served as image/jpeg
  - `huge`           a 30000x30000 1-bit PNG (~110 kB on the wire; a decompression bomb)
  - `cmyk`           a CMYK JPEG (valid)
  - `16bit`          a 16-bit grayscale PNG (valid)
  - `palette`        a palette PNG with a transparent index (valid)
  - `alpha`          an RGBA PNG (valid)
  - `animated`       an animated GIF, 3 frames (valid)
  - `exif-rotated`   a JPEG with EXIF orientation 6 (valid; 160x96 stored, 96x160 displayed)
  - `tiny`           an 8x8 JPEG (valid but below any sensible minimum size)
  - `noai`           a valid JPEG sent with `X-Robots-Tag: noai`
  - `404`, `500`, `429`   that HTTP status
  - `stall`          never answers (holds the connection until the client times out)
  - `drop`           closes the connection without any response
  - `redirect-loop`  302 to itself, forever
Anything else: 404.

Size: the server, its image renderers and the bad cases it answers are one test fixture, and the
path table above is the contract the demo metadata and the tests rely on.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import struct
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

log = logging.getLogger(__name__)

DEMO_HOST = "demo.rs5m.test"
BAD_CASES = (
    "corrupt",
    "truncated",
    "empty",
    "html",
    "huge",
    "cmyk",
    "16bit",
    "palette",
    "alpha",
    "animated",
    "exif-rotated",
    "tiny",
    "noai",
    "404",
    "500",
    "429",
    "stall",
    "drop",
    "redirect-loop",
)
BAD_ALIASES = {
    "zero-bytes": "empty",
    "html-as-jpeg": "html",
    "bomb": "huge",
    "redirect": "redirect-loop",
    "timeout": "stall",
}
HUGE_SIDE = 30000


def _jpeg(image: Image.Image, quality: int = 90, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def render_aerial(n: int) -> Image.Image:
    """A top-down scene: a rotated patchwork of crop fields, roads, building blocks, maybe water."""
    rng = np.random.default_rng([7, n])
    size = 256 + 32 * int(rng.integers(0, 3))
    canvas = Image.new("RGB", (size * 2, size * 2))
    draw = ImageDraw.Draw(canvas)
    palette = [(86, 120, 58), (120, 140, 70), (160, 150, 90), (110, 90, 60), (70, 100, 50), (180, 170, 110)]
    # Fields: a recursive split of the square into parcels, each with its own crop colour and row stripes.
    boxes = [(0, 0, size * 2, size * 2)]
    for _ in range(int(rng.integers(5, 9))):
        next_boxes = []
        for x0, y0, x1, y1 in boxes:
            if (x1 - x0) > 60 and rng.random() < 0.8:
                cut = int(rng.integers(x0 + 25, x1 - 25))
                next_boxes += [(x0, y0, cut, y1), (cut, y0, x1, y1)]
            elif (y1 - y0) > 60 and rng.random() < 0.8:
                cut = int(rng.integers(y0 + 25, y1 - 25))
                next_boxes += [(x0, y0, x1, cut), (x0, cut, x1, y1)]
            else:
                next_boxes.append((x0, y0, x1, y1))
        boxes = next_boxes
    for x0, y0, x1, y1 in boxes:
        base = np.array(palette[int(rng.integers(len(palette)))]) + rng.integers(-15, 15, 3)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(v) for v in base))
        stripe = tuple(int(v) for v in np.clip(base - 18, 0, 255))
        step = int(rng.integers(4, 9))
        if rng.random() < 0.5:
            for x in range(x0, x1, step):
                draw.line((x, y0, x, y1), fill=stripe)
        else:
            for y in range(y0, y1, step):
                draw.line((x0, y, x1, y), fill=stripe)
    if rng.random() < 0.5:
        cx, cy, r = (int(v) for v in rng.integers(size // 2, size * 3 // 2, 3))
        draw.ellipse((cx - r // 3, cy - r // 4, cx + r // 3, cy + r // 4), fill=(40, 70, 110))
    # Roads, with building blocks along them.
    for _ in range(int(rng.integers(2, 5))):
        if rng.random() < 0.5:
            y = int(rng.integers(0, size * 2))
            line = (0, y, size * 2, y + int(rng.integers(-40, 40)))
        else:
            x = int(rng.integers(0, size * 2))
            line = (x, 0, x + int(rng.integers(-40, 40)), size * 2)
        draw.line(line, fill=(125, 125, 120), width=int(rng.integers(4, 9)))
        for _ in range(int(rng.integers(6, 16))):
            t = rng.random()
            bx = int(line[0] + t * (line[2] - line[0]) + rng.integers(-20, 20))
            by = int(line[1] + t * (line[3] - line[1]) + rng.integers(-20, 20))
            w, h = (int(v) for v in rng.integers(5, 14, 2))
            roof = (150, 70, 60) if rng.random() < 0.5 else (185, 185, 180)
            draw.rectangle((bx, by, bx + w, by + h), fill=roof)
    canvas = canvas.rotate(float(rng.uniform(0, 90)), resample=Image.BILINEAR)
    image = canvas.crop((size // 2, size // 2, size * 3 // 2, size * 3 // 2))
    noise = rng.normal(0, 6, (size, size, 1))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6))


def render_photo(n: int) -> Image.Image:
    """A ground-level view: sky gradient, hills, clouds, sun, ground, trees in perspective."""
    rng = np.random.default_rng([11, n])
    width, height = 320, 240
    horizon = int(height * rng.uniform(0.4, 0.65))
    sky_top = np.array([rng.integers(40, 120), rng.integers(100, 170), 230])
    sky_bottom = np.array([210, 220, 235])
    ground = np.array([rng.integers(60, 140), rng.integers(90, 150), rng.integers(30, 80)])
    rows = np.zeros((height, width, 3), np.float32)
    t = np.linspace(0, 1, horizon)[:, None]
    rows[:horizon] = (sky_top * (1 - t) + sky_bottom * t)[:, None, :]
    shade = np.linspace(0.7, 1.1, height - horizon)[:, None, None]
    rows[horizon:] = ground * shade
    image = Image.fromarray(np.clip(rows, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    ridge = (
        [(0, horizon)]
        + [(x, horizon - int(rng.integers(0, horizon * 2 // 3))) for x in sorted(rng.integers(0, width, 6))]
        + [(width, horizon)]
    )
    draw.polygon(ridge, fill=tuple(int(v) for v in rng.integers(70, 150, 3)))
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, max(1, horizon // 2)))
        draw.ellipse((cx - 30, cy - 10, cx + 30, cy + 10), fill=(245, 245, 250))
    sx, sy = int(rng.integers(20, width - 20)), int(rng.integers(10, max(11, horizon - 30)))
    draw.ellipse((sx - 14, sy - 14, sx + 14, sy + 14), fill=(255, 240, 190))
    for _ in range(int(rng.integers(3, 9))):
        x = int(rng.integers(0, width))
        base = horizon + int(rng.integers(5, height - horizon))
        scale = (base - horizon) / (height - horizon) + 0.3
        trunk_h, crown = int(40 * scale), int(22 * scale)
        draw.rectangle((x - 2, base - trunk_h, x + 2, base), fill=(80, 55, 35))
        draw.ellipse((x - crown, base - trunk_h - crown, x + crown, base - trunk_h + crown // 2), fill=(40, 95, 45))
    return image.filter(ImageFilter.GaussianBlur(0.8))


def near_duplicate(image: Image.Image, copy: int) -> bytes:
    """Copy `copy` of an image: shrunk by 4-12 % and re-encoded at a lower quality."""
    scale = 1.0 - 0.04 * (1 + copy % 3)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return _jpeg(image.resize(size, Image.LANCZOS), quality=85 - 10 * (copy % 3))


@functools.lru_cache(maxsize=4096)
def render_image(kind: str, n: int, copy: int | None) -> bytes:
    image = render_aerial(n) if kind == "rs" else render_photo(n)
    return _jpeg(image) if copy is None else near_duplicate(image, copy)


def _huge_png(side: int = HUGE_SIDE) -> bytes:
    """A valid 1-bit, all-black PNG of side x side pixels (~110 kB), built in well under a second.

    The rows are identical, so one block of rows is deflated once (a full flush makes the block
    independent of what came before) and repeated; the zlib checksum is computed over all rows.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    rows_per_block = 64
    blocks, rest = divmod(side, rows_per_block)
    block = row * rows_per_block
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(row * rest) + deflate.flush(zlib.Z_FINISH)
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    data = b"\x78\xda" + unit * blocks + tail + struct.pack(">I", checksum)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@functools.lru_cache(maxsize=None)
def bad_body(case: str) -> tuple[str, bytes]:
    """(content type, body) of the bad cases answered with status 200.

    Each case renders a scene of its own, so the valid ones are not near-duplicates of each other.
    """
    scene = 1_000_000 + 10 * BAD_CASES.index(case) if case in BAD_CASES else 999_999
    valid = render_aerial(scene)
    if case == "corrupt":
        return "image/jpeg", b"\xff\xd8\xff\xe0" + np.random.default_rng(3).bytes(4000)
    if case == "truncated":
        body = _jpeg(valid)
        return "image/jpeg", body[: len(body) // 2]
    if case == "empty":
        return "image/jpeg", b""
    if case == "html":
        return "image/jpeg", b"<!doctype html><html><head><title>Not found</title></head><body>gone</body></html>"
    if case == "huge":
        return "image/png", _huge_png()
    if case == "cmyk":
        return "image/jpeg", _jpeg(valid.convert("CMYK"))
    if case == "16bit":
        gray = (np.asarray(valid.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        return "image/png", _png(Image.fromarray(gray))
    if case == "palette":
        return "image/png", _png(valid.convert("P", palette=Image.ADAPTIVE, colors=64), transparency=0)
    if case == "alpha":
        rgba = valid.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(valid.size))
        return "image/png", _png(rgba)
    if case == "animated":
        frames = [render_aerial(scene + i).convert("P", palette=Image.ADAPTIVE) for i in range(3)]
        buffer = io.BytesIO()
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
        return "image/gif", buffer.getvalue()
    if case == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        return "image/jpeg", _jpeg(valid.resize((160, 96)), exif=exif)
    if case == "tiny":
        return "image/jpeg", _jpeg(valid.resize((8, 8)))
    if case == "noai":
        return "image/jpeg", _jpeg(valid)
    raise KeyError(case)


class _Handler(BaseHTTPRequestHandler):
    server: "DemoWebServer"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        self._send(502, b"the demo proxy does not open tunnels\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        target = urlsplit(self.path)
        path, query = target.path, parse_qs(target.query)
        parts = [p for p in path.split("/") if p]
        asked = path + ("?" + target.query if target.query else "")
        with self.server.lock:
            self.server.requests[asked] += 1
            first_time = self.server.first_request(asked)
        if len(parts) == 3 and parts[0] == "flaky":
            if first_time:
                return self._send(503, b"try again later\n")
            parts[0] = "img"
        try:
            if len(parts) == 3 and parts[0] == "img" and parts[1] in ("rs", "photo") and parts[2].endswith(".jpg"):
                n = int(parts[2][: -len(".jpg")])
                copy = int(query["copy"][0]) if "copy" in query else None
                if n < 0 or (copy is not None and copy < 0):
                    raise ValueError(n)
                return self._send(200, render_image(parts[1], n, copy), "image/jpeg")
        except ValueError:
            return self._send(404, b"not found\n")
        if len(parts) == 2 and parts[0] == "bad":
            return self._bad(parts[1])
        return self._send(404, b"not found\n")

    def _bad(self, name: str) -> None:
        case = name.rsplit(".", 1)[0] if "." in name else name
        case = BAD_ALIASES.get(case, case)
        if case in ("404", "500", "429"):
            return self._send(int(case), f"status {case}\n".encode())
        if case == "stall":
            self.server.stopping.wait(self.server.stall_seconds)
            self.close_connection = True
            return None
        if case == "drop":
            self.close_connection = True
            return None
        if case == "redirect-loop":
            return self._send(302, b"", headers={"Location": self.path})
        try:
            content_type, body = bad_body(case)
        except KeyError:
            return self._send(404, b"not found\n")
        headers = {"X-Robots-Tag": "noai"} if case == "noai" else None
        return self._send(200, body, content_type, headers)


class DemoWebServer(ThreadingHTTPServer):
    """The demo web on 127.0.0.1 and a free port; use as a context manager (starts and stops it)."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        # Clients that time out or hang up (the point of several bad cases) are not server errors.
        log.debug("client %s went away", client_address)

    def __init__(self, port: int = 0, stall_seconds: float = 60.0, state_dir: str | Path | None = None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.stall_seconds = stall_seconds
        # Where "this path was asked before" is remembered, so that a later server (a retry job)
        # answers a flaky path as a second request.
        self.state_dir = Path(state_dir) if state_dir else None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # path (and query) -> times asked
        self._thread: threading.Thread | None = None

    def first_request(self, asked: str) -> bool:
        """Whether this is the first request of `asked` (called under the lock)."""
        if self.state_dir is None:
            return self.requests[asked] == 1
        marker = self.state_dir / hashlib.sha1(asked.encode()).hexdigest()
        if marker.exists():
            return False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True

    @property
    def url(self) -> str:
        """Base URL for direct requests, also the proxy URL to give to a client."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "DemoWebServer":
        self._thread = threading.Thread(target=self.serve_forever, name="demo-web", daemon=True)
        self._thread.start()
        log.info("demo web serving on %s", self.url)
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> "DemoWebServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def demo_url(path: str, host: str = DEMO_HOST) -> str:
    """`/img/rs/3.jpg` -> `http://demo.rs5m.test/img/rs/3.jpg`."""
    return f"http://{host}{path}"


if __name__ == "__main__":
    import time

    logging.basicConfig(level=logging.INFO)
    with DemoWebServer() as server:
        print(f"serving {server.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
