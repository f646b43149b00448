"""Tiny inputs for the outlier-stage tests: kept.parquet rows and img2dataset-style webdataset shards."""

from __future__ import annotations

import functools
import io
import json
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

KEPT_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("matched_keywords", pa.list_(pa.string())),
        ("part", pa.string()),
        ("tar", pa.string()),
        ("member", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


def rs_like(rng: np.random.Generator, size: int = 48) -> Image.Image:
    """Green/brown field texture: what the tiny detector should call RS."""
    base = np.array([70, 110, 50]) + rng.integers(-25, 25, size=(size // 8, size // 8, 3))
    blocks = np.kron(base, np.ones((8, 8, 1)))
    return Image.fromarray(np.clip(blocks + rng.integers(-10, 10, size=blocks.shape), 0, 255).astype(np.uint8))


def non_rs_like(rng: np.random.Generator, size: int = 48) -> Image.Image:
    """Smooth saturated red-to-blue gradient."""
    t = np.linspace(0, 1, size)[None, :, None]
    color = np.concatenate([230 * (1 - t), 20 + 0 * t, 230 * t], axis=2) * np.ones((size, 1, 1))
    return Image.fromarray(np.clip(color + rng.integers(0, 20), 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_shard(path: Path, samples: list[tuple[str, str, bytes, str]]) -> None:
    """samples: (key, uid, jpg bytes, caption) as img2dataset's webdataset writer lays them out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, uid, data, caption in samples:
            for name, payload in (
                (f"{key}.jpg", data),
                (f"{key}.json", json.dumps({"uid": uid, "key": key}).encode()),
                (f"{key}.txt", caption.encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def make_run(root: Path, parts: dict[str, int], seed: int = 0, corrupt: set[str] = frozenset(), unlisted: int = 1):
    """A run folder with download shards and kept.parquet: `parts` maps part -> kept images.

    Even-numbered images are RS-like, odd ones not; `unlisted` extra images per shard are in the
    tar but not in kept.parquet (the dedup stage dropped them). Keys in `corrupt` get broken bytes.
    Returns (kept path, {uid: jpg bytes}).
    """
    rng = np.random.default_rng(seed)
    rows, images = [], {}
    for part, count in parts.items():
        samples = []
        tar = f"results/pub11/download/{part}/00000.tar"
        for i in range(count + unlisted):
            key = f"{int(part):05d}{i:04d}"
            uid = f"{int(part):04x}{i:012x}"
            rs = i % 2 == 0
            data = jpeg_bytes(rs_like(rng) if rs else non_rs_like(rng))
            if key in corrupt:
                data = b"\xff\xd8not a jpeg"
            caption = f"{'aerial view of farmland' if rs else 'a red poster'} {i}"
            samples.append((key, uid, data, caption))
            if i < count:
                images[uid] = data
                rows.append(
                    {
                        "uid": uid,
                        "source": "laion2b" if i % 3 else "cc3m",
                        "url": f"http://x/{uid}.jpg",
                        "caption": caption,
                        "matched_keywords": ["aerial"] if rs else ["poster"],
                        "part": part,
                        "tar": tar,
                        "member": f"{key}.jpg",
                        "width": 48,
                        "height": 48,
                    }
                )
        write_shard(root / tar, samples)
    kept = root / "results/pub11/dedup/kept.parquet"
    kept.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=KEPT_SCHEMA), kept)
    return kept, images


def write_folder(folder: Path, make, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        make(rng).save(folder / f"img{i:03d}.jpg", quality=90)
    return folder


@functools.lru_cache(maxsize=1)
def trained_detector() -> tuple[Path, Path, dict]:
    """Train the tiny detector once per test process: (weights, work folder, metrics)."""
    from rs5m.configured import defaults
    from rs5m.pub11.settings import DetectorSettings
    from rs5m.pub11.train_rs_detector import train_rs_detector

    configured = DetectorSettings.from_config(defaults())  # yolo11n-cls.yaml from scratch, seed 0, amp

    work = Path(tempfile.mkdtemp(prefix="rs5m-detector-"))
    positives = write_folder(work / "pos", rs_like, 10, seed=1)
    write_folder(work / "neg" / "nested", non_rs_like, 14, seed=2)
    metrics = train_rs_detector(
        [positives],
        [work / "neg"],
        work / "out/weights.pt",
        work / "out/metrics.json",
        work / "train",
        replace(configured, device="cpu", detector=replace(configured.detector, epochs=2, imgsz=32, batch=8)),
        workers=0,
    )
    return work / "out/weights.pt", work, metrics
