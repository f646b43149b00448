"""A small finished run folder with the shape `rs5m browse` reads, for tests and the screenshot."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from rs5m.columns import make_uid
from rs5m.ledger import StageStats, drops_table, write_drops, write_stats

COLOURS = [
    (46, 125, 50),
    (21, 101, 192),
    (198, 40, 40),
    (245, 124, 0),
    (106, 27, 154),
    (0, 131, 143),
    (121, 85, 72),
    (96, 125, 139),
    (251, 192, 45),
    (56, 142, 60),
    (2, 119, 189),
    (173, 20, 87),
]


def image_bytes(index: int, size: int = 96, fmt: str = "JPEG") -> bytes:
    """A small picture that differs per index: a field, a road and a building block."""
    base = COLOURS[index % len(COLOURS)]
    img = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(img)
    draw.rectangle([size // 8, size // 8, size // 2, size // 2], fill=tuple(255 - c for c in base))
    draw.line([0, size - 1 - index * 7 % size, size, index * 5 % size], fill=(230, 230, 230), width=5)
    draw.ellipse([size // 2, size // 2, size - 8, size - 8], outline=(20, 20, 20), width=3)
    out = io.BytesIO()
    img.save(out, fmt, quality=90)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: list[dict], style: str) -> None:
    """style 'rs5m': .img_name/.img_content/.caption/.json; style 'wds': .jpg/.txt/.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for n, sample in enumerate(samples):
            key = f"{n:06d}"
            provenance = {k: v for k, v in sample.items() if k not in ("image", "caption")}
            if style == "rs5m":
                _add(tar, f"{key}.img_name", sample["img_name"].encode())
                _add(tar, f"{key}.img_content", sample["image"])
                _add(tar, f"{key}.caption", sample["caption"].encode())
            else:
                _add(tar, f"{key}.jpg", sample["image"])
                _add(tar, f"{key}.txt", sample["caption"].encode())
            _add(tar, f"{key}.json", json.dumps(provenance).encode())


def make_run(root: Path) -> dict:
    """Write the run folder under root; return what a reader should find in it."""
    root = Path(root)
    results = root / "results"
    pub11_train, pub11_val, rs3_val = [], [], []
    words = [
        ["airport", "runway"],
        ["harbor"],
        ["farmland", "airport"],
        ["forest"],
        ["harbor", "city"],
        ["stadium"],
        ["bridge"],
    ]
    sources = ["laion2b", "cc3m", "laion2b", "redcaps", "cc3m", "laion2b", "cc3m"]
    for i in range(7):
        url = f"https://img.example.org/{i}.jpg"
        sample = {
            "uid": make_uid(sources[i], url),
            "source": sources[i],
            "url": url,
            "img_name": f"{sources[i]}_{make_uid(sources[i], url)}.jpg",
            "caption": f"an aerial view of the {words[i][0]} number {i}",
            "clip_score": round(0.20 + 0.02 * i, 3),
            "rs_score": round(0.50 + 0.05 * i, 3),
            "matched_keywords": words[i],
            "image": image_bytes(i),
        }
        (pub11_train if i < 3 else pub11_val).append(sample)
    rs3_rows = [
        ("fmow", "fmow_airport_0_0_rgb.jpg", 'a satellite view of an airport, with "two" runways'),
        ("ben", "ben_12345.jpg", "broad-leaved forest beside a river\nin summer"),
        ("millionaid", "millionaid_P0173410.jpg", "an aerial view of a baseball diamond"),
    ]
    for j, (dataset, img_name, caption) in enumerate(rs3_rows):
        rs3_val.append(
            {
                "uid": make_uid(dataset, img_name),
                "source": "rs3",
                "dataset": dataset,
                "img_name": img_name,
                "caption": caption,
                "labels": ["airport"] if dataset == "fmow" else [],
                "geo": {"country": "US"},
                "image": image_bytes(7 + j),
            }
        )
    write_shard(results / "shards/train/pub11-train-0000.tar", pub11_train, "rs5m")
    write_shard(results / "shards/val/pub11-val-0000.tar", pub11_val, "rs5m")
    write_shard(results / "shards/val/rs3-val-0000.tar", rs3_val, "wds")

    # Download shards: two dropped samples (one dropped by dedup, one by the outlier stage) and a kept one.
    dropped = [
        {"uid": make_uid("laion2b", f"https://img.example.org/dup{i}.jpg"), "image": image_bytes(20 + i)}
        for i in range(2)
    ]
    never_downloaded = make_uid("cc3m", "https://img.example.org/broken.jpg")
    download = results / "pub11/download/0000/00000.tar"
    download.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(download, "w") as tar:
        for n, row in enumerate([*dropped, {"uid": pub11_val[0]["uid"], "image": pub11_val[0]["image"]}]):
            _add(tar, f"{n:09d}.jpg", row["image"])
            _add(tar, f"{n:09d}.txt", b"caption")
            _add(tar, f"{n:09d}.json", json.dumps({"uid": row["uid"], "status": "success"}).encode())
    pq.write_table(
        pa.table({"uid": [r["uid"] for r in dropped], "status": ["success"] * 2}),
        results / "pub11/download/0000/00000.parquet",
    )
    dedup_drops = drops_table(
        [
            {
                "uid": dropped[0]["uid"],
                "source": "laion2b",
                "stage": "image_dedup",
                "reason": "phash_duplicate",
                "detail": f"near {pub11_val[0]['uid']}",
            },
            {
                "uid": never_downloaded,
                "source": "cc3m",
                "stage": "image_dedup",
                "reason": "invalid_image",
                "detail": "0 bytes",
            },
        ]
    )
    write_drops(results / "pub11/dedup/kept.drops.parquet", dedup_drops)
    write_stats(
        results / "pub11/dedup/kept.stats.json",
        [
            StageStats("image_dedup", "laion2b", 9, 8, {"phash_duplicate": 1}),
            StageStats("image_dedup", "cc3m", 5, 4, {"invalid_image": 1}),
        ],
    )
    write_drops(
        results / "pub11/final.drops.parquet",
        drops_table(
            [
                {
                    "uid": dropped[1]["uid"],
                    "source": "laion2b",
                    "stage": "outliers",
                    "reason": "clip_score_low",
                    "detail": "clip 0.11 < 0.20",
                }
            ]
        ),
    )
    write_stats(results / "pub11/final.stats.json", [StageStats("outliers", "laion2b", 8, 7, {"clip_score_low": 1})])

    stats = results / "stats"
    stats.mkdir(parents=True, exist_ok=True)
    (stats / "funnel.csv").write_text("stage,source,rows_in,kept\nimage_dedup,laion2b,9,8\noutliers,laion2b,8,7\n")
    (stats / "funnel.md").write_text("| stage | kept |\n|---|---|\n| image_dedup | 8 |\n")
    Image.new("RGB", (64, 32), (200, 220, 240)).save(stats / "funnel.png")
    return {
        "train": pub11_train,
        "val": pub11_val + rs3_val,
        "pub11_val": pub11_val,
        "rs3_val": rs3_val,
        "dropped": dropped,
        "never_downloaded": never_downloaded,
    }
