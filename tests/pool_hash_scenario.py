"""Pool hashes from keyword filter to download, run by tests/test_pool_hashes.py INSIDE a sealed network
namespace (tests/sealed.py): never run this file directly on a machine with a network.

A CommonPool part (sha256 column) and a COYO part (image_phash column) are keyword-filtered,
URL-deduplicated with their pool hashes and downloaded from a loopback server with the sha256
verified; the result (ledgers, funnel) is written as JSON for the test to check.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from schema_defaults import download_settings, keyword_filter_args, url_filter_args

from rs5m.assemble.funnel import build_funnel
from rs5m.ledger import read_stats
from rs5m.pub11.download_part import download_part
from rs5m.pub11.keyword_filter import filter_chunk
from rs5m.pub11.sources import pool_hash_columns
from rs5m.pub11.url_filter import filter_and_dedup_urls

KEYWORDS = str(Path(__file__).resolve().parents[1] / "config" / "keywords.txt")


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, 255 - shade, 90)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


IMAGES = {f"/{name}.jpg": _jpeg(shade) for name, shade in zip("abcdefg", range(20, 240, 30))}
IMAGES["/b.jpg"] = IMAGES["/a.jpg"]  # the same image under two URLs


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/robots.txt":
            body, status = b"", 404
        else:
            body, status = IMAGES.get(self.path, b""), 200 if self.path in IMAGES else 404
        self.server.requests.append(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run(folder: Path) -> dict:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sha = {path: hashlib.sha256(body).hexdigest() for path, body in IMAGES.items()}
    caption = "satellite image of a harbour"

    # DataComp CommonPool layout: b repeats a's sha256 under another URL, c's sha256 is wrong, d has none.
    n = 4
    pq.write_table(
        pa.table(
            {
                "uid": [f"{i:032x}" for i in range(1, n + 1)],
                "url": [f"{base}/{x}.jpg" for x in "abcd"],
                "text": [caption] * n,
                "original_width": [64] * n,
                "original_height": [48] * n,
                "clip_b32_similarity_score": [0.3] * n,
                "clip_l14_similarity_score": [0.3] * n,
                "face_bboxes": pa.array([[] for _ in range(n)], pa.list_(pa.list_(pa.float64()))),
                "sha256": [sha["/a.jpg"], sha["/a.jpg"].upper(), "0" * 64, None],
            }
        ),
        folder / "0000000.parquet",
    )
    # COYO-700M layout: f's image_phash repeats e's (in other letter case); g's is its own.
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "url": [f"{base}/{x}.jpg" for x in "efg"],
                "text": [caption] * 3,
                "width": pa.array([64] * 3, pa.int32()),
                "height": pa.array([48] * 3, pa.int32()),
                "image_phash": ["9f3c0a1b2d4e5f60", "9F3C0A1B2D4E5F60", "0123456789abcdef"],
            }
        ),
        folder / "part-00000.parquet",
    )
    sources = {
        "commonpool": {"format": "datacomp", "columns": {}},
        "coyo700m": {"format": None, "columns": {"phash": "image_phash"}},
    }
    metadata = []
    for source, path, fmt in (
        ("commonpool", "0000000.parquet", "datacomp"),
        ("coyo700m", "part-00000.parquet", None),
    ):
        out = folder / "metadata" / source / "00000.parquet"
        filter_chunk(
            source,
            [str(folder / path)],
            str(out),
            KEYWORDS,
            **keyword_filter_args(format=fmt, columns=sources[source]["columns"]),
        )
        metadata.append(str(out))
    part = folder / "urldedup" / "0000.parquet"
    filter_and_dedup_urls(
        metadata,
        [str(part)],
        str(folder / "urldedup.stats.json"),
        str(folder / "urldedup.drops.parquet"),
        **url_filter_args(
            allowed_networks=["127.0.0.1/32"],
            sha256_columns=pool_hash_columns(sources, "sha256"),
            phash_columns=pool_hash_columns(sources, "phash"),
        ),
    )
    download_part(
        str(part),
        str(folder / "download" / "0000"),
        str(folder / "download" / "0000.stats.json"),
        str(folder / "download" / "0000.drops.parquet"),
        threads=1,
        settings=download_settings(
            thread_count=4,
            timeout=5,
            retries=0,
            allowed_networks=["127.0.0.1/32"],
            per_host_rate=1000,
            per_host_burst=100,
            verify_sha256=pool_hash_columns(sources, "sha256"),
        ),
    )
    stats = [str(p) for p in sorted(folder.rglob("*.stats.json"))]
    funnel = build_funnel(read_stats(stats))
    drops = []
    for path in ("urldedup.drops.parquet", "download/0000.drops.parquet"):
        drops += pq.read_table(folder / path).to_pylist()
    kept = pq.read_table(folder / "metadata" / "commonpool" / "00000.parquet").to_pylist()
    kept += pq.read_table(folder / "metadata" / "coyo700m" / "00000.parquet").to_pylist()
    server.shutdown()
    return {
        "url_of": {row["uid"]: row["url"].rsplit("/", 1)[1] for row in kept},
        "drops": [{k: d[k] for k in ("uid", "source", "stage", "reason", "detail")} for d in drops],
        "funnel": funnel.rows,
        "problems": funnel.problems,
        "requests": sorted(server.requests),
    }


if __name__ == "__main__":
    out = Path(sys.argv[1])
    assert socket.gethostbyname("www.rs5m.test").startswith("127."), "not in the sealed namespace"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(run(out), indent=1, default=str))
