"""Assembly stage, dataset statistics: tables and plots of the released samples.

Reads the final PUB11/RS3 tables (and the RS3 image headers); writes `results/stats/` CSV, Markdown
and PNG files: RS3 counts per dataset, keyword frequency, image sizes, caption lengths, UTM zones.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from rs5m.assemble.settings import StatsSettings
from rs5m.assemble.split import TRAIN, VAL, split_of
from rs5m.columns import UID

SIZE_EDGES = [0, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
WORD_EDGES = [0, 5, 10, 15, 20, 30, 40, 60, 80, 120]
UTM_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8-degree latitude bands from 80 S, I and O left out
_ZONE = re.compile(r"^\s*(\d{1,2})\s*([C-HJ-NP-Xc-hj-np-x])?")
OUTPUTS = (
    "rs3_counts.csv",
    "rs3_counts.md",
    "keyword_frequency.csv",
    "keyword_frequency.png",
    "image_sizes.csv",
    "image_sizes.png",
    "caption_lengths.csv",
    "caption_lengths.png",
    "utm_zones.csv",
    "utm_zones.png",
)


def _bin_label(edges: list[int], value: float) -> str:
    for low, high in zip(edges, edges[1:]):
        if low <= value < high:
            return f"{low}-{high}"
    return f">={edges[-1]}"


def _bin_labels(edges: list[int]) -> list[str]:
    return [f"{low}-{high}" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]}"]


def _write_rows(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    # No timestamp or version in the PNG metadata, so reruns write the same file.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    _figure().close(fig)


def utm_cell(geo: dict[str, Any]) -> tuple[int, str] | None:
    """(zone 1-60, latitude band or "") from a geo record's `utm`/`utm_zone`, else its lat/lon.

    fMoW gives zone + latitude band ("18T"); BigEarthNet gives zone + hemisphere ("29N"), read
    the same way, so a BigEarthNet "N"/"S" lands in band N or S, a coarse but honest cell.
    """
    for key in ("utm", "utm_zone"):
        value = geo.get(key)
        if isinstance(value, (str, int)) and (match := _ZONE.match(str(value))):
            zone = int(match.group(1))
            if 1 <= zone <= 60:
                return zone, (match.group(2) or "").upper()
    lat, lon = lat_lon(geo)
    if lat is None:
        return None
    zone = min(60, int((lon + 180) // 6) + 1)
    band = UTM_BANDS[min(len(UTM_BANDS) - 1, max(0, int((lat + 80) // 8)))] if -80 <= lat <= 84 else ""
    return zone, band


def lat_lon(geo: dict[str, Any]) -> tuple[float | None, float | None]:
    lat = next((geo[k] for k in ("lat", "latitude") if isinstance(geo.get(k), (int, float))), None)
    lon = next((geo[k] for k in ("lon", "lng", "longitude") if isinstance(geo.get(k), (int, float))), None)
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None, None
    return float(lat), float(lon)


def rs3_counts(rs3: list[dict], val_fraction: float, out: Path) -> None:
    counts: dict[str, Counter] = {}
    for row in rs3:
        counts.setdefault(row["dataset"], Counter())[split_of(row[UID], val_fraction)] += 1
    rows = [[d, c[TRAIN], c[VAL], c[TRAIN] + c[VAL]] for d, c in sorted(counts.items())]
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)])
    _write_rows(out / "rs3_counts.csv", ["dataset", "train", "val", "total"], rows)
    lines = ["| dataset | train | val | total |", "|---|---:|---:|---:|"]
    lines += [f"| {d} | {t:,} | {v:,} | {n:,} |" for d, t, v, n in rows]
    (out / "rs3_counts.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def keyword_frequency(pub11: list[dict], out: Path) -> None:
    counts = Counter(keyword for row in pub11 for keyword in (row.get("matched_keywords") or []))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    _write_rows(out / "keyword_frequency.csv", ["keyword", "samples"], [list(item) for item in ranked])
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.25 * len(ranked) + 1)))
    ax.barh([k for k, _ in ranked][::-1], [n for _, n in ranked][::-1], color="#4477aa")
    ax.set_xlabel("PUB11 samples whose caption matched the keyword")
    ax.set_title("Keyword frequency")
    fig.tight_layout()
    _save(fig, out / "keyword_frequency.png")


def image_sizes(pub11: list[dict], rs3: list[dict], base_dir: Path, out: Path) -> None:
    sizes = {"pub11": [(r.get("width"), r.get("height")) for r in pub11], "rs3": []}
    for row in rs3:
        # Opening reads the header only; no pixels are decoded.
        with Image.open(base_dir / row["image_path"]) as image:
            sizes["rs3"].append(image.size)
    labels = _bin_labels(SIZE_EDGES)
    rows, hist = [], {}
    for subset, pairs in sizes.items():
        longest = Counter(_bin_label(SIZE_EDGES, max(w, h)) for w, h in pairs if w and h)
        hist[subset] = [longest[label] for label in labels]
        rows += [[subset, label, longest[label]] for label in labels]
    _write_rows(out / "image_sizes.csv", ["subset", "longest_side_px", "samples"], rows)
    _bar_pair(hist, labels, "longest image side (px)", "Image sizes", out / "image_sizes.png")


def caption_lengths(pub11: list[dict], rs3: list[dict], out: Path) -> None:
    labels = _bin_labels(WORD_EDGES)
    rows, hist = [], {}
    for subset, table in (("pub11", pub11), ("rs3", rs3)):
        words = Counter(_bin_label(WORD_EDGES, len((row.get("caption") or "").split())) for row in table)
        hist[subset] = [words[label] for label in labels]
        rows += [[subset, label, words[label]] for label in labels]
    _write_rows(out / "caption_lengths.csv", ["subset", "words", "samples"], rows)
    _bar_pair(hist, labels, "caption length (words)", "Caption lengths", out / "caption_lengths.png")


def _bar_pair(hist: dict[str, list[int]], labels: list[str], xlabel: str, title: str, path: Path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.4
    for offset, (subset, values) in enumerate(sorted(hist.items())):
        ax.bar([i + (offset - 0.5) * width for i in range(len(labels))], values, width, label=subset)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def utm_zones(rs3: list[dict], out: Path) -> None:
    """Counts per (zone, band) and a map: the zone grid as a heat map with lat/lon points on top."""
    cells: Counter = Counter()
    points = []
    for row in rs3:
        geo = json.loads(row["geo"]) if row.get("geo") else None
        if not isinstance(geo, dict):
            continue
        cell = utm_cell(geo)
        if cell:
            cells[(row["dataset"], *cell)] += 1
        lat, lon = lat_lon(geo)
        if lat is not None:
            points.append((lon, lat))
    _write_rows(
        out / "utm_zones.csv",
        ["dataset", "zone", "band", "samples"],
        [[d, z, b, n] for (d, z, b), n in sorted(cells.items())],
    )
    import numpy as np

    grid = np.zeros((len(UTM_BANDS), 60))
    for (_, zone, band), count in cells.items():
        if band in UTM_BANDS:
            grid[UTM_BANDS.index(band), zone - 1] += count
    plt = _figure()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    shown = np.ma.masked_equal(grid, 0)
    mesh = ax.pcolormesh(np.arange(-180, 181, 6), np.arange(-80, 81, 8), shown, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label="geo-tagged samples per UTM cell")
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=4, c="red", label="sample locations")
        ax.legend(loc="lower left")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-80, 84)
    ax.set_xticks(range(-180, 181, 30))
    ax.set_xlabel("longitude (UTM zones are the 6-degree columns)")
    ax.set_ylabel("latitude (8-degree bands)")
    ax.grid(True, linewidth=0.3)
    ax.set_title(f"UTM zones of geo-tagged RS3 samples ({sum(cells.values()):,} samples)")
    fig.tight_layout()
    _save(fig, out / "utm_zones.png")


def write_report(
    pub11_final: str | Path | None,
    rs3_final: str | Path | None,
    out_dir: str | Path,
    settings: StatsSettings,
    base_dir: str | Path = ".",  # not config: the run folder the tables' image paths are relative to
) -> list[Path]:
    """Write every statistics file; returns their paths (OUTPUTS under `out_dir`).

    A subset this build does not hold (None) counts as empty: its tables have headers and no rows.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pub11 = pq.read_table(pub11_final).to_pylist() if pub11_final is not None else []
    rs3 = pq.read_table(rs3_final).to_pylist() if rs3_final is not None else []
    rs3_counts(rs3, settings.split.val_fraction, out)
    keyword_frequency(pub11, out)
    image_sizes(pub11, rs3, Path(base_dir), out)
    caption_lengths(pub11, rs3, out)
    utm_zones(rs3, out)
    return [out / name for name in OUTPUTS]
