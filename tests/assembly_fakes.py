"""A tiny run folder in the shape the assembly stage reads (docs/ARCHITECTURE.md).

PUB11: img2dataset-style download tars in two parts, `final.parquet`, the URL-dedup parts with
native fields (YFCC geotags and dates), a CC3M labels file, a ledger chain per source
(keyword -> download -> dedup -> outliers) with drop records. RS3: JPEG files, `final.parquet`.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m.columns import make_uid, uid_bucket
from rs5m.configured import config
from rs5m.decontamination.decontamination_report import write_report
from rs5m.decontamination.settings import DecontaminationSettings
from rs5m.ledger import StageStats, drops_table, write_drops, write_stats

KEYWORDS = ["satellite", "aerial view", "remote sensing"]
CC3M_LABELS = "data/cc3m_labels.tsv"
# YFCC photos cycle through these geotags; "" is a photo without one.
YFCC_PLACES = [("-33.87", "151.21"), ("48.86", "2.35"), ("", "")]


def native_fields(source: str, url: str, n: int) -> dict:
    """The native columns the URL-dedup stage keeps for a row (as its `native` JSON)."""
    if source == "yfcc15m":
        lat, lon = YFCC_PLACES[n % len(YFCC_PLACES)]
        return {
            "latitude": lat,
            "longitude": lon,
            "date_taken": f"2012-0{1 + n % 9}-15 10:20:00.0",
            "download_url": url,
        }
    if source == "redcaps":
        return {"created_utc": 1593820800.0 + 86400 * n, "url": url}
    return {"url": url}


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(20):
        x, y = rng.randrange(width), rng.randrange(height)
        image.putpixel((x, y), tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def make_pub11(run: Path, per_source: dict[str, int], parts: int = 2, seed: int = 0) -> pa.Table:
    """Download tars + final.parquet + ledger for `per_source` downloaded images per source.

    Of the downloaded images, every 4th is a duplicate and every 5th an outlier; the rest are kept.
    Returns the final table.
    """
    rng = random.Random(seed)
    by_part: dict[int, list[dict]] = {}
    stats, drops = [], []
    final_rows = []
    for source, downloaded in per_source.items():
        rows_in = downloaded * 3 + 2  # keyword stage input; 2 failed downloads per source
        keyword = StageStats(
            "keyword_filter", source, rows_in, downloaded + 2, {"no_keyword_match": rows_in - downloaded - 2}
        )
        download = StageStats("download", source, downloaded + 2, downloaded)
        dedup = StageStats("image_dedup", source, downloaded)
        outliers = StageStats("outliers", source)
        for n in range(2):
            uid = make_uid(source, f"http://example.invalid/{source}/failed{n}")
            download.drop("download_failed")
            drops.append({"uid": uid, "source": source, "stage": "download", "reason": "download_failed"})
        for n in range(downloaded):
            url = f"http://example.invalid/{source}/{n}.jpg"
            uid = make_uid(source, url)
            width, height = rng.choice([(64, 48), (96, 64), (128, 128)])
            row = {
                "uid": uid,
                "source": source,
                "url": url,
                "caption": f"{KEYWORDS[n % 3]} of {source} field number {n} ünïcode",
                "matched_keywords": [KEYWORDS[n % 3]],
                "width": width,
                "height": height,
                "image": jpeg_bytes(width, height, seed * 100000 + int(uid[:5], 16)),
            }
            row["native"] = json.dumps(native_fields(source, url, n))
            by_part.setdefault(uid_bucket(uid, parts), []).append(row)
            if n % 4 == 3:
                dedup.drop("duplicate_image")
                drops.append({"uid": uid, "source": source, "stage": "image_dedup", "reason": "duplicate_image"})
                continue
            dedup.kept += 1
            outliers.rows_in += 1
            if n % 5 == 4:
                outliers.drop("low_clip_score")
                drops.append({"uid": uid, "source": source, "stage": "outliers", "reason": "low_clip_score"})
                continue
            outliers.kept += 1
            final_rows.append(row)
        stats += [keyword, download, dedup, outliers]
    urldedup = run / "results/pub11/urldedup"
    urldedup.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        rows = by_part.get(part, [])
        pq.write_table(
            pa.Table.from_pylist([{c: r[c] for c in ("uid", "source", "url", "caption", "native")} for r in rows]),
            urldedup / f"{part:04d}.parquet",
        )
    labels = [
        f"cap\t{r['url']}\taerial photography,field,sky\t/m/1,/m/2,/m/3\t0.95,{0.5 + n % 2 * 0.45},0.2"
        for n, r in enumerate(r for r in final_rows if r["source"] == "cc3m")
    ]
    (run / CC3M_LABELS).parent.mkdir(parents=True, exist_ok=True)
    (run / CC3M_LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")
    for part, rows in by_part.items():
        tar_rel = f"results/pub11/download/{part:04d}/00000.tar"
        (run / tar_rel).parent.mkdir(parents=True, exist_ok=True)
        rng.shuffle(rows)  # img2dataset writes in completion order
        with tarfile.open(run / tar_rel, "w") as archive:
            for index, row in enumerate(rows):
                key = f"{part:04d}{index:05d}"
                row.update(part=f"{part:04d}", tar=tar_rel, member=f"{key}.jpg")
                _add(archive, f"{key}.jpg", row["image"])
                _add(archive, f"{key}.txt", row["caption"].encode())
                _add(archive, f"{key}.json", json.dumps({"uid": row["uid"]}).encode())
    for row in final_rows:
        row["clip_score"] = round(rng.uniform(0.2, 0.4), 4)
        row["rs_score"] = round(rng.uniform(0.5, 1.0), 4)
    columns = [
        "uid",
        "source",
        "url",
        "caption",
        "matched_keywords",
        "part",
        "tar",
        "member",
        "width",
        "height",
        "clip_score",
        "rs_score",
    ]
    table = pa.Table.from_pylist([{c: row[c] for c in columns} for row in final_rows])
    (run / "results/pub11").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, run / "results/pub11/final.parquet")
    write_stats(run / "results/pub11/ledger/all.stats.json", stats)
    write_drops(run / "results/pub11/ledger/all.drops.parquet", drops_table(drops))
    places = [{"uid": r["uid"], "img_name": "", "text": r["caption"], "entity": "Paris"} for r in final_rows[:3]]
    pq.write_table(pa.Table.from_pylist(places), run / "results/pub11/places.parquet")
    return table


RS3_DATASETS = {"fmow": 12, "ben": 10, "millionaid": 8}


def make_rs3(run: Path, per_dataset: dict[str, int] | None = None, seed: int = 1) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for dataset, count in (per_dataset or RS3_DATASETS).items():
        for n in range(count):
            rel = f"data/rs3/{dataset}/img_{n}.jpg"
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            size = rng.choice([32, 48, 120])
            (run / rel).write_bytes(jpeg_bytes(size, size, seed * 1000 + n + len(dataset) * 7919))
            geo = None
            if dataset == "fmow":
                geo = json.dumps(
                    {
                        "lat": rng.uniform(-60, 60),
                        "lon": rng.uniform(-180, 180),
                        "utm": f"{rng.randint(1, 60)}N",
                        "country": "France",
                    }
                )
            elif dataset == "ben":
                geo = json.dumps({"utm": f"{rng.randint(29, 35)}N", "season": "Summer"})
            rows.append(
                {
                    "uid": make_uid(dataset, f"{dataset}/img_{n}.jpg"),
                    "dataset": dataset,
                    "img_name": f"{dataset}_img_{n}.jpg",
                    "image_path": rel,
                    "caption": f"meta {n}. an aerial view of a {dataset} scene",
                    "top_cap": f"an aerial view of a {dataset} scene",
                    "ssl_cap": "a satellite image",
                    "meta_caption": None if dataset == "millionaid" else f"meta {n}.",
                    "labels": ["forest", "water"] if dataset == "ben" else [],
                    "geo": geo,
                }
            )
    schema = pa.schema(
        [
            ("uid", pa.string()),
            ("dataset", pa.string()),
            ("img_name", pa.string()),
            ("image_path", pa.string()),
            ("caption", pa.string()),
            ("top_cap", pa.string()),
            ("ssl_cap", pa.string()),
            ("meta_caption", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("geo", pa.string()),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    (run / "results/rs3").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, run / "results/rs3/final.parquet")
    return table


def make_run(run: Path, pub11: dict[str, int] | None = None) -> Path:
    make_pub11(run, pub11 or {"laion2b": 40, "cc3m": 24, "wit": 12, "yfcc15m": 9})
    make_rs3(run)
    # The decontamination report of a build checked against no eval set (the card reads it).
    stats = run / "results/stats"
    stats.mkdir(parents=True, exist_ok=True)
    write_report(
        [],
        [],
        stats / "decontamination.csv",
        stats / "decontamination.md",
        stats / "decontamination_pairs.png",
        formats={},
        settings=DecontaminationSettings.from_config(config({"decontamination": {"embedding": {"enabled": False}}})),
    )
    return run
