"""Outlier stage QA: the paper's Fig. 13 grid for this run and score histograms per source.

Reads dedup/kept.parquet and scores/{part}.parquet; writes results/stats/fig13_grid.{csv,md,png}
and a histogram PNG (one row of clip/rs panels per source).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rs5m.columns import PUB11_SOURCES, SOURCE
from rs5m.pub11.outlier_threshold import pooled_scores, top_percent_threshold
from rs5m.pub11.settings import OutlierSettings

logger = logging.getLogger("rs5m.pub11.outlier_qa")


def fig13_grid(clip_scores: np.ndarray, rs_scores: np.ndarray, levels: Sequence[float]) -> pd.DataFrame:
    """Kept-pair counts: row "s X%" x column "c Y%" = pairs in the top X % of clip_score and top Y % of
    rs_score, with the stage's own threshold rule (rs5m.pub11.score_part), over the scored rows."""
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    rs_scores = np.asarray(rs_scores, dtype=np.float64)
    scored = ~(np.isnan(clip_scores) | np.isnan(rs_scores))
    clip_scores, rs_scores = clip_scores[scored], rs_scores[scored]
    clip_masks = [clip_scores >= top_percent_threshold(clip_scores, level) for level in levels]
    rs_masks = [rs_scores >= top_percent_threshold(rs_scores, level) for level in levels]
    counts = [[int(np.count_nonzero(cm & rm)) for rm in rs_masks] for cm in clip_masks]
    return pd.DataFrame(
        counts,
        index=pd.Index([f"s {level:g}%" for level in levels], name="clip \\ rs"),
        columns=[f"c {level:g}%" for level in levels],
    )


def grid_markdown(grid: pd.DataFrame) -> str:
    header = "| " + " | ".join([grid.index.name] + list(grid.columns)) + " |"
    rule = "|" + "---|" * (len(grid.columns) + 1)
    body = ["| " + " | ".join([name] + [f"{v:,}" for v in row]) + " |" for name, row in zip(grid.index, grid.values)]
    return "\n".join([header, rule, *body]) + "\n"


def plot_grid(grid: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(grid.columns) + 2, 0.6 * len(grid.index) + 1.5))
    image = ax.imshow(grid.values, cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_yticks(range(len(grid.index)), grid.index)
    ax.set_xlabel("RS detector: top c % kept")
    ax.set_ylabel("CLIP prompt score: top s % kept")
    top = grid.values.max() if grid.size else 0
    for (r, c), value in np.ndenumerate(grid.values):
        ax.text(
            c, r, f"{value:,}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 * top else "black"
        )
    fig.colorbar(image, ax=ax, label="kept pairs")
    ax.set_title("Kept pairs by joint threshold (Fig. 13 of the paper, this run)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_histograms(
    sources: np.ndarray, clip_scores: np.ndarray, rs_scores: np.ndarray, thresholds: dict, path: str | Path
) -> None:
    """One row per source: clip_score and rs_score histograms, with the global thresholds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = set(sources.tolist())
    order = [s for s in PUB11_SOURCES if s in present] + sorted(present - set(PUB11_SOURCES))
    fig, axes = plt.subplots(max(len(order), 1), 2, figsize=(9, 1.8 * max(len(order), 1) + 0.6), squeeze=False)
    for row, source in enumerate(order):
        mask = sources == source
        for col, (name, values) in enumerate((("clip_score", clip_scores), ("rs_score", rs_scores))):
            ax = axes[row][col]
            finite = values[mask][~np.isnan(values[mask])]
            ax.hist(finite, bins=50, color="tab:blue" if col == 0 else "tab:green")
            if np.isfinite(thresholds.get(name, np.nan)):
                ax.axvline(thresholds[name], color="red", linewidth=1)
            ax.set_title(f"{source}: {name} (n={len(finite):,})", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def outlier_qa(
    kept: str | Path,
    scores: Sequence[str | Path],
    grid_csv: str | Path,
    grid_md: str | Path,
    grid_png: str | Path,
    histograms_png: str | Path,
    settings: OutlierSettings,
) -> pd.DataFrame:
    clip_top_percent, rs_top_percent = settings.clip_top_percent, settings.rs_top_percent
    table, clip_scores, rs_scores = pooled_scores(kept, scores)
    grid = fig13_grid(clip_scores, rs_scores, settings.qa_levels)
    for path in (grid_csv, grid_md, grid_png, histograms_png):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.to_csv(grid_csv)
    scored = ~(np.isnan(clip_scores) | np.isnan(rs_scores))
    thresholds = {
        "clip_score": top_percent_threshold(clip_scores[scored], clip_top_percent),
        "rs_score": top_percent_threshold(rs_scores[scored], rs_top_percent),
    }
    Path(grid_md).write_text(
        f"Kept pairs by joint threshold over {int(scored.sum()):,} pooled scored pairs "
        f"(rows: top s % by CLIP prompt score; columns: top c % by RS-detector probability).\n"
        f"Stage setting: top {clip_top_percent:g} % x top {rs_top_percent:g} % "
        f"(clip_score >= {thresholds['clip_score']:.6g}, rs_score >= {thresholds['rs_score']:.6g}).\n\n"
        + grid_markdown(grid)
    )
    plot_grid(grid, grid_png)
    plot_histograms(
        np.array(table.column(SOURCE).to_pylist(), dtype=object), clip_scores, rs_scores, thresholds, histograms_png
    )
    logger.info("Fig. 13 grid over %d pairs:\n%s", int(scored.sum()), grid.to_string())
    return grid
