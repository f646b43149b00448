"""Inputs shared by the outlier benchmarks: JPEG shards like img2dataset's and an untrained detector file."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def write_run(root: Path, images: int, per_shard: int = 1000, size: int = 256, seed: int = 0) -> Path:
    """`images` random-texture JPEGs (img2dataset's default 256 px, quality 95) in shards of one
    part, and a kept.parquet listing them all. Returns the kept.parquet path."""
    rng = np.random.default_rng(seed)
    # A few distinct base images re-noised per sample: realistic JPEG sizes without slow generation.
    bases = [np.kron(rng.integers(0, 255, (size // 8, size // 8, 3)), np.ones((8, 8, 1))) for _ in range(8)]
    rows = []
    for shard in range((images + per_shard - 1) // per_shard):
        tar_rel = f"results/pub11/download/0000/{shard:05d}.tar"
        (root / tar_rel).parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / tar_rel, "w") as tar:
            for i in range(shard * per_shard, min(images, (shard + 1) * per_shard)):
                noisy = np.clip(bases[i % 8] + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(noisy).save(buffer, format="JPEG", quality=95)
                key, uid = f"{i:09d}", f"{i:016x}"
                for name, payload in (
                    (f"{key}.jpg", buffer.getvalue()),
                    (f"{key}.json", json.dumps({"uid": uid}).encode()),
                    (f"{key}.txt", b"an aerial image"),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                rows.append({"uid": uid, "source": "laion2b", "part": "0000", "tar": tar_rel, "member": f"{key}.jpg"})
    kept = root / "results/pub11/dedup/kept.parquet"
    kept.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), kept)
    return kept


def untrained_detector(path: Path, model: str = "yolo11n-cls.yaml", imgsz: int = 224) -> Path:
    """A YOLO classifier with classes non_rs/rs and random weights, saved in ultralytics' format:
    the same architecture and cost as a trained one, without training it first."""
    from rs5m import offline

    offline.setup()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import ClassificationModel

    yolo = YOLO(model)
    ClassificationModel.reshape_outputs(yolo.model, 2)
    yolo.model.names = {0: "non_rs", 1: "rs"}
    yolo.model.args = {**getattr(yolo.model, "args", {}), "imgsz": imgsz}
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.ckpt = {"train_args": {"imgsz": imgsz}}
    yolo.save(str(path))
    return path
