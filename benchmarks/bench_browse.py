"""Benchmark `rs5m browse`'s shard index: build time, and random image reads through the index
against the naive alternative (scan the tar for the member on every request).

    PYTHONPATH=workflow python benchmarks/bench_browse.py [--small]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rs5m.browse.index import RunIndex, refresh_index
from rs5m.browse.web import BrowseApp


def write_shards(root: Path, shards: int, per_shard: int, image_size: int) -> list[tuple[str, Path, str]]:
    rng = random.Random(0)
    samples = []
    for s in range(shards):
        path = root / "results/shards/val" / f"pub11-val-{s:04d}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for n in range(per_shard):
                key = f"{s:04d}{n:06d}"
                uid = f"{s:04x}{n:012x}"
                members = {
                    "img_name": f"laion2b_{uid}.jpg".encode(),
                    "img_content": b"\xff\xd8\xff" + rng.randbytes(image_size),
                    "caption": f"an aerial view number {n}".encode(),
                    "json": json.dumps(
                        {
                            "uid": uid,
                            "source": "laion2b",
                            "clip_score": 0.3,
                            "rs_score": 0.6,
                            "matched_keywords": ["aerial"],
                        }
                    ).encode(),
                }
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                samples.append((uid, path, key))
    return samples


def scan_read(path: Path, key: str) -> bytes:
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.name == f"{key}.img_content":
                return tar.extractfile(member).read()
    raise KeyError(key)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="4 shards x 500 samples instead of 16 x 2,000")
    args = parser.parse_args()
    shards, per_shard = (4, 500) if args.small else (16, 2000)
    image_size, reads = 20_000, 200
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = write_shards(root, shards, per_shard, image_size)
        total_mb = sum(p.stat().st_size for p in (root / "results/shards/val").glob("*.tar")) / 1e6
        start = time.perf_counter()
        refresh_index(root)
        build = time.perf_counter() - start
        start = time.perf_counter()
        again = refresh_index(root)
        recheck = time.perf_counter() - start
        assert again.indexed == []
        index = RunIndex(root)
        picks = random.Random(1).sample(samples, reads)
        start = time.perf_counter()
        for uid, _, _ in picks:
            index.image_bytes(index.sample_image(uid))
        indexed = (time.perf_counter() - start) / reads
        start = time.perf_counter()
        for _, path, key in picks[:20]:
            scan_read(path, key)
        scanned = (time.perf_counter() - start) / 20
        app = BrowseApp(root)
        from wsgiref.util import setup_testing_defaults

        start = time.perf_counter()
        for uid, _, _ in picks:
            environ = {"PATH_INFO": f"/image/{uid}"}
            setup_testing_defaults(environ)
            b"".join(app(environ, lambda status, headers: None))
        routed = (time.perf_counter() - start) / reads
        print(f"shards: {shards} x {per_shard} samples, {total_mb:.0f} MB, images {image_size // 1000} kB")
        print(f"index build (first start): {build:.2f} s = {shards * per_shard / build:,.0f} samples/s")
        print(f"index re-check (next start, nothing changed): {recheck * 1000:.1f} ms")
        print(f"random image read via index: {indexed * 1000:.2f} ms; via /image route (WSGI): {routed * 1000:.2f} ms")
        print(f"random image read by scanning its tar: {scanned * 1000:.1f} ms")
        print(f"ratio scan / index: {scanned / indexed:,.0f}x")
        print(f"index size: {os.path.getsize(root / 'results/browse/index.sqlite') / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
