"""CPU throughput of the RS3 branch with tiny models: readers, meta-captions, captioning.

PYTHONPATH=workflow python benchmarks/bench_rs3.py [--small]
Prints images/s of each step on this machine; the tiny models have random weights, so the
captioning figure measures the pipeline's own overhead (decode, rotations, ranking, tables),
not a real BLIP-2.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _timed(label: str, count: int, function, unit: str = "images"):
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    print(f"{label:<46} {count:>6} {unit} in {seconds:7.2f} s = {count / seconds:9.1f} {unit}/s")
    return result, count / seconds


def _pub11_stage_inputs(work: Path, count: int, rng: random.Random) -> None:
    """final.parquet, one URL-dedup part and a CC3M labels file for `count` kept rows."""
    sources = ["yfcc15m", "cc3m", "redcaps"]
    final, urldedup, labels = [], [], []
    for i in range(count):
        source, url, uid = sources[i % 3], f"http://example.invalid/{i}.jpg", f"{i:016x}"
        final.append({"uid": uid, "source": source, "url": url})
        native = {"url": url}
        if source == "yfcc15m":
            native.update(
                latitude=str(rng.uniform(-50, 60)),
                longitude=str(rng.uniform(-120, 150)),
                date_taken=f"2012-0{1 + i % 9}-15 10:20:00.0",
            )
        elif source == "redcaps":
            native.update(created_utc=1.5e9 + i * 3600.0)
        urldedup.append({"uid": uid, "source": source, "url": url, "native": json.dumps(native)})
    for i in range(count * 10 // 3):
        labels.append(
            f"cap\thttp://example.invalid/{i}.jpg\tsky,field,road,sea\t/m/1,/m/2,/m/3,/m/4\t0.95,0.9,0.3,0.99"
        )
    pq.write_table(pa.Table.from_pylist(final), work / "pub11_final.parquet")
    pq.write_table(pa.Table.from_pylist(urldedup), work / "pub11_urldedup.parquet")
    (work / "cc3m_labels.tsv").write_text("\n".join(labels) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer images (for a busy 2-core machine)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from rs5m.configured import defaults
    from rs5m.demo import rs3_demo_inputs as rs3_demo
    from rs5m.demo import rs3_tiny_models as tiny_models
    from rs5m.pub11.pub11_metacaption import pub11_metacaptions
    from rs5m.rs3 import rs3_caption as caption
    from rs5m.rs3.rs3_metacaption import rs3_meta_rows
    from rs5m.rs3.rs3_read_bigearthnet import read_bigearthnet
    from rs5m.rs3.rs3_read_fmow import read_fmow
    from rs5m.rs3.settings import BigEarthNetSettings, CaptionSettings, FmowSettings
    from rs5m.settings import MetacaptionSettings

    copies = 4 if args.small else 20
    images_to_caption = 8 if args.small else 32
    work = Path(tempfile.mkdtemp(prefix="bench_rs3_"))
    figures = {}

    # Readers on copies of the demo trees.
    roots = {}
    for copy in range(copies):
        roots[copy] = rs3_demo.write_rs3_demo(work / f"demo{copy}", seed=copy)
    fmow_root = work / "fmow"
    for copy, tree in roots.items():
        for path in Path(tree["fmow"]).rglob("*"):
            if path.is_file():
                # One instance folder per copy keeps the published layout and unique names.
                target = fmow_root / "train" / path.parent.parent.name / f"{path.parent.name}x{copy}" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    fmow_count = sum(1 for _ in fmow_root.rglob("*.json")) + sum(1 for _ in fmow_root.rglob("*.jpg"))
    stats, figures["fmow_read"] = _timed(
        "read fMoW (header + JSON)",
        fmow_count // 2,
        lambda: read_fmow(
            fmow_root, work / "fmow.parquet", FmowSettings(split="train", variants=["rgb", "msrgb"]), threads=2
        ),
    )
    ben_roots = [roots[c][v] for c in roots for v in ("bigearthnet_v1", "bigearthnet_v2")]
    ben_patches = 9 * copies
    _, figures["ben_read"] = _timed(
        "read BigEarthNet (3 GeoTIFFs -> RGB JPEG)",
        ben_patches,
        lambda: read_bigearthnet(
            ben_roots,
            work / "ben.parquet",
            work / "map.parquet",
            work / "ben",
            BigEarthNetSettings(split="train", version="auto", reflectance_clip=[0, 2000], jpeg_quality=95),
            threads=2,
        ),
        "patches",
    )

    # Meta-captions over many fMoW-like rows (the reverse-geocoding bulk lookup included).
    record = json.loads((next(Path(roots[0]["fmow"]).rglob("airport_0_0_rgb.json"))).read_text())
    rng = random.Random(0)
    rows = []
    for i in range(2000 if args.small else 20000):
        lon, lat = rng.uniform(-120, 150), rng.uniform(-40, 60)
        record["bounding_boxes"][0]["raw_location"] = f"POLYGON (({lon} {lat}, {lon} {lat}))"
        rows.append(
            {
                "uid": f"{i:016x}",
                "dataset": "fmow",
                "img_name": f"fmow_{i}.jpg",
                "image_path": "x",
                "labels": ["airport"],
                "meta": json.dumps(record),
                "width": 160,
                "height": 120,
            }
        )
    rs3_meta_rows(rows[:10], seed=0, season_rule="hemisphere")  # load the geocoder's table outside the timing
    _, figures["metacaption"] = _timed(
        "meta-captions (fMoW records)", len(rows), lambda: rs3_meta_rows(rows, seed=0, season_rule="hemisphere"), "rows"
    )

    # The PUB11 meta-caption stage end to end: join the kept rows with their native fields, read a
    # CC3M labels file ten times the kept CC3M rows, geocode, compose, write.
    _pub11_stage_inputs(work, len(rows), rng)
    _, figures["pub11_metacaption"] = _timed(
        "PUB11 meta-caption stage (YFCC/CC3M/RedCaps)",
        len(rows),
        lambda: pub11_metacaptions(
            work / "pub11_final.parquet",
            [str(work / "pub11_urldedup.parquet")],
            work / "pub11_meta.parquet",
            stats_path=None,
            settings=MetacaptionSettings.from_config(defaults()),
            cc3m_labels=work / "cc3m_labels.tsv",
            threads=1,
            memory_limit=None,
        ),
        "rows",
    )

    # Captioning with tiny models: generate 20, rank with two CLIPs, 12 rotations.
    models = work / "models"
    _timed(
        "build tiny models",
        3,
        lambda: tiny_models.build_tiny_models(
            models / "blip2", {"rs5m-tiny-clip": models / "a.pt", "rs5m-tiny-clip-rn": models / "b.pt"}, seed=0
        ),
        "models",
    )
    meta = pq.read_table(work / "ben.parquet").to_pylist()[:images_to_caption]
    part = work / "part.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "uid": r["uid"],
                    "dataset": r["dataset"],
                    "img_name": r["img_name"],
                    "image_path": r["image_path"],
                    "meta_caption": "",
                    "labels": r["labels"],
                    "geo": "{}",
                }
                for r in meta
            ]
        ),
        part,
    )
    # The configured caption settings with the tiny models and shorter captions.
    configured = CaptionSettings.from_config(defaults())
    settings = replace(
        configured,
        blip2=replace(configured.blip2, model=str(models / "blip2")),
        clip_a=replace(configured.clip_a, model="rs5m-tiny-clip", pretrained=str(models / "a.pt")),
        clip_b=replace(configured.clip_b, model="rs5m-tiny-clip-rn", pretrained=str(models / "b.pt")),
        max_length=30,
        device="cpu",
    )
    _, figures["caption_part"] = _timed(
        "caption part incl. model loading (batch 8)",
        len(meta),
        lambda: caption.caption_part(part, work / "out.parquet", work / "out.candidates.parquet", settings),
    )
    processor, blip2 = caption.load_blip2(str(models / "blip2"), lora=None, device="cpu", dtype="auto")
    scorer_a = caption.ClipScorer("rs5m-tiny-clip", str(models / "a.pt"), "cpu")
    scorer_b = caption.ClipScorer("rs5m-tiny-clip-rn", str(models / "b.pt"), "cpu")
    from PIL import Image

    images = [Image.open(r["image_path"]).convert("RGB") for r in meta]
    uids = [r["uid"] for r in meta]

    def run_batches(batch: int):
        for start in range(0, len(images), batch):
            caption.caption_images(
                images[start : start + batch],
                uids[start : start + batch],
                processor,
                blip2,
                scorer_a,
                scorer_b,
                settings,
            )

    for batch in (1, 8):
        _, figures[f"caption_b{batch}"] = _timed(
            f"caption_images, batch {batch} (20 cand., 12 rot.)", len(images), lambda batch=batch: run_batches(batch)
        )
    _, figures["generate"] = _timed(
        "BLIP-2 generate only, batch 8",
        len(images) * 20,
        lambda: [
            caption.generate_candidates(
                processor, blip2, images[s : s + 8], num_candidates=20, top_k=50, top_p=0.95, max_length=30, seed=0
            )
            for s in range(0, len(images), 8)
        ],
        "candidates",
    )
    # Selection alone on fixed embeddings (the pure part).
    rng_np = np.random.default_rng(0)
    embeddings = [
        (
            rng_np.normal(size=768),
            rng_np.normal(size=(20, 768)),
            rng_np.normal(size=1024),
            rng_np.normal(size=(20, 1024)),
            rng_np.normal(size=(12, 1024)),
        )
        for _ in range(500)
    ]
    _, figures["select"] = _timed(
        "selection on fixed embeddings", len(embeddings), lambda: [caption.select_candidates(*e) for e in embeddings]
    )
    print(f"ratio caption batch 8 / batch 1: {figures['caption_b8'] / figures['caption_b1']:.2f}x")
    print(f"ratio BigEarthNet read / caption (batch 8): {figures['ben_read'] / figures['caption_b8']:.1f}x")


if __name__ == "__main__":
    main()
