"""Decontamination report: per eval set, images read and matches in PUB11 and RS3 by method, and a
grid of matched pairs; the dataset card's section on the eval sets checked.

Reads the eval-set tables and the subsets' match tables; writes `results/stats/decontamination.{csv,md}`
and `results/stats/decontamination_pairs.png`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs5m.columns import UID
from rs5m.decontamination.matching import MATCH_SCHEMA, METHODS
from rs5m.decontamination.settings import DecontaminationSettings

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ report
REPORT_COLUMNS = (
    "eval_set",
    "format",
    "images_read",
    "pub11_phash",
    "pub11_embedding",
    "pub11_matched",
    "pub11_dropped",
    "rs3_phash",
    "rs3_embedding",
    "rs3_matched",
    "rs3_dropped",
    "pub11_unconfirmed",
    "rs3_unconfirmed",
)


def report_rows(
    eval_tables: Sequence[str | Path], formats: dict[str, str], matches: Sequence[str | Path], actions: dict[str, str]
) -> list[dict]:
    """One row per eval set (plus a total): images read, dataset images with a candidate pair per
    subset and method, with a confirmed pair (`*_matched`, an image counts once), with candidates
    only (`*_unconfirmed`: reported, never dropped), and dropped."""
    tables = [pq.read_table(p, schema=MATCH_SCHEMA) for p in matches]
    all_matches = pa.concat_tables(tables).to_pylist() if tables else []
    rows = []
    for path in eval_tables:
        name = Path(path).name[: -len(".parquet")]
        row = {"eval_set": name, "format": formats.get(name, ""), "images_read": pq.read_metadata(path).num_rows}
        for subset in ("pub11", "rs3"):
            _count(row, subset, [m for m in all_matches if m["subset"] == subset and m["eval_set"] == name], actions)
        rows.append(row)
    total = {"eval_set": "total", "format": ""}
    for column in REPORT_COLUMNS[2:]:
        total[column] = sum(r[column] for r in rows)
    # An image matched by two eval sets is dropped once: the total counts distinct images.
    for subset in ("pub11", "rs3"):
        _count(total, subset, [m for m in all_matches if m["subset"] == subset], actions)
    return rows + [total]


def _count(row: dict, subset: str, mine: list[dict], actions: dict[str, str]) -> None:
    """Candidates by method (`*_phash`, `*_embedding`: dataset images with a candidate pair),
    confirmed (`*_matched`), candidates of images with no confirmed pair (`*_unconfirmed`), dropped."""
    for method in METHODS:
        row[f"{subset}_{method}"] = len({m[UID] for m in mine if m["method"] == method})
    confirmed = {m[UID] for m in mine if m["confirmed"]}
    row[f"{subset}_matched"] = len(confirmed)
    row[f"{subset}_unconfirmed"] = len({m[UID] for m in mine} - confirmed)
    row[f"{subset}_dropped"] = len(confirmed) if actions.get(subset) == "drop" else 0


def _load_thumb(path: str, size: int = 128) -> Image.Image:
    from rs5m.tar import MemberReader, locate_members

    try:
        if "::" in path:
            tar, member = path.split("::", 1)
            reader = MemberReader()
            (location,) = locate_members([(tar, member)], root=".")
            data = reader.read(location)
            reader.close()
            image = Image.open(io.BytesIO(data))
        else:
            image = Image.open(path)
        image = image.convert("RGB")
    except Exception as error:  # noqa: BLE001 - an unreadable image is shown as a grey tile, not a failed report
        logger.warning("cannot show %s: %s", path, error)
        image = Image.new("RGB", (size, size), (200, 200, 200))
    image.thumbnail((size, size))
    return image


def pairs_figure(matches: Sequence[str | Path], out_png: str | Path, max_pairs: int = 24) -> int:
    """A grid of matched pairs: eval image | dataset image, titled with set, subset, method and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [pq.read_table(p, schema=MATCH_SCHEMA) for p in matches]
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    rows.sort(key=lambda m: (not m["confirmed"], m["eval_set"], m["subset"], m["method"], m["image_id"], m[UID]))
    # Spread the shown pairs over sets, subsets and methods: round-robin over the groups.
    groups: dict[tuple, list[dict]] = {}
    for m in rows:
        groups.setdefault((m["eval_set"], m["subset"], m["method"]), []).append(m)
    shown: list[dict] = []
    while len(shown) < max_pairs and any(groups.values()):
        for key in sorted(groups):
            if groups[key] and len(shown) < max_pairs:
                shown.append(groups[key].pop(0))
    cols = 4  # two pairs per figure row
    n_rows = max(1, math.ceil(len(shown) / 2))
    fig, axes = plt.subplots(n_rows, cols, figsize=(cols * 2.2, n_rows * 2.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, m in enumerate(shown):
        r, c = divmod(k, 2)
        score = f"{int(m['score'])} bits" if m["method"] == "phash" else f"cos {m['score']:.3f}"
        score += f", ncc {m['confirmation']:.2f}" + ("" if m["confirmed"] else " unconfirmed")
        axes[r][2 * c].imshow(_load_thumb(m["eval_path"]))
        axes[r][2 * c].set_title(f"{m['eval_set'][:28]}\n{m['image_id'][-28:]}", fontsize=6)
        axes[r][2 * c + 1].imshow(_load_thumb(m["location"]))
        axes[r][2 * c + 1].set_title(f"{m['subset']} {m['method']} {score} ({m['variant']})", fontsize=6)
    if not shown:
        axes[0][0].text(0, 0.5, "no eval-set matches", fontsize=10)
    fig.suptitle("Eval-set matches: eval image | dataset image", fontsize=9)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return len(shown)


def write_report(
    eval_tables: Sequence[str | Path],
    matches: Sequence[str | Path],
    out_csv: str | Path,
    out_md: str | Path,
    out_png: str | Path,
    formats: dict[str, str],
    settings: DecontaminationSettings,
) -> list[dict]:
    """The decontamination report: per eval set and subset, candidates, confirmed matches and drops;
    `formats` names each eval set's format (decontamination.eval_sets and the evaluation benchmarks)."""
    actions = dataclasses.asdict(settings.action)
    phash_radius, embedding_threshold = settings.phash.radius, settings.embedding_threshold()
    clip_model, clip_pretrained = settings.outliers.clip.model, settings.outliers.clip.pretrained
    rows = report_rows(eval_tables, formats, matches, actions)
    with open(out_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    header = "| " + " | ".join(REPORT_COLUMNS) + " |"
    rule = "|" + "|".join("---" if c in ("eval_set", "format") else "---:" for c in REPORT_COLUMNS) + "|"
    body = ["| " + " | ".join(str(r[c]) for c in REPORT_COLUMNS) + " |" for r in rows]
    embedding = (
        "off" if embedding_threshold is None else f"cosine >= {embedding_threshold} ({clip_model} / {clip_pretrained})"
    )
    text = "\n".join(
        [
            "# Eval-set decontamination",
            "",
            f"Matchers: pHash of the eight rotations/flips of each eval image within {phash_radius} bits; "
            f"CLIP image embedding {embedding}. Actions: PUB11 `{actions.get('pub11')}`, RS3 `{actions.get('rs3')}` "
            "(`drop` removes the matched samples before assembly with reason `eval_overlap`; `report` keeps them).",
            "",
            "Columns: images of the eval set read; dataset images with a candidate pair by pHash, by embedding; "
            "with a confirmed pair (`*_matched`: the two images agree in detail, confirmation score >= the "
            "threshold, and in the colours and lightness of their aligned blocks); "
            "dropped; with candidates that all failed the confirmation (`*_unconfirmed`: kept, only reported). "
            "The total counts distinct dataset images (one matched by two sets counts once).",
            "",
            header,
            rule,
            *body,
            "",
            "Matched pairs: `decontamination_pairs.png`; every pair: `results/decontamination/{pub11,rs3}.matches.parquet`.",
            "",
        ]
    )
    Path(out_md).write_text(text)
    pairs_figure(matches, out_png)
    return rows
