"""The evaluation table (rule `evaluation_table`): merges the `evaluate` jobs' JSON files into
`results/eval/results.{json,csv,md}` and a bar plot `results.png`, one row per model, the paper's
GeoRSCLIP rows (SPEC 8) beside them and every figure's delta to the base model.

The main figure of a benchmark is its zero-shot top-1 accuracy or its retrieval mean recall; the
JSON and CSV carry every recall too. `compare_runs` puts two run folders' tables side by side
(`rs5m compare RUN_A RUN_B`), with deltas to RUN_A's base.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rs5m.evaluation.settings import TableSettings

# The paper's table (SPEC 8), keyed by the benchmark names config/rs5m.yaml uses.
# The paper reports recall at K = 1, 5, 10 (rs5m.evaluation.metrics names them alike).
PAPER_RETRIEVAL_METRICS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mean_recall")


def _paper_row(eurosat: float, resisc45: float, aid: float, rsitmd: tuple, rsicd: tuple) -> dict:
    """One model's published figures: zero-shot top-1 on three sets, the retrieval metrics on two."""
    zeroshot = {"eurosat": eurosat, "resisc45": resisc45, "aid": aid}
    retrieval = {"rsitmd": rsitmd, "rsicd": rsicd}
    return {
        **{name: {"top1": top1} for name, top1 in zeroshot.items()},
        **{name: dict(zip(PAPER_RETRIEVAL_METRICS, values, strict=True)) for name, values in retrieval.items()},
    }


PAPER_ROWS = {
    "paper: GeoRSCLIP ViT-B/32": _paper_row(
        61.40, 72.74, 74.42,
        rsitmd=(17.92, 34.96, 46.02, 14.12, 41.46, 57.52, 35.33),
        rsicd=(12.17, 28.45, 38.61, 9.31, 26.51, 41.28, 26.06),
    ),
    "paper: GeoRSCLIP ViT-H/14": _paper_row(
        67.47, 73.83, 76.33,
        rsitmd=(23.45, 42.92, 53.32, 18.01, 44.60, 59.96, 40.38),
        rsicd=(14.27, 29.55, 40.44, 11.38, 30.80, 44.41, 28.48),
    ),
}  # fmt: skip

MAIN_METRIC = {"zeroshot": "top1", "retrieval": "mean_recall"}
RANDOM_WEIGHTS_BANNER = (
    "**WARNING: rows marked (random init) come from RANDOM-INIT TOY MODELS (the demo's tiny CLIP). "
    "Their numbers are chance level and say NOTHING about the dataset; only the layout of this table is real.**"
)


def build_table(records: list[dict], base: str) -> dict:
    """The table as a JSON-able dict from the `evaluate` records (one per model x benchmark)."""
    benchmarks: dict[str, str] = {}
    models: dict[str, dict] = {}
    for record in records:
        benchmarks.setdefault(record["benchmark"], record["task"])
        row = models.setdefault(
            record["model"],
            {"model": record["model"], "source": "run", "random_weights": False, "metrics": {}, "checkpoint": {}},
        )
        row["random_weights"] |= bool(record["random_weights"])
        row["metrics"][record["benchmark"]] = record["metrics"]
        if record.get("checkpoint"):
            row["checkpoint"] = {
                "path": record["checkpoint"],
                "missing_keys": len(record["missing_keys"]),
                "unexpected_keys": len(record["unexpected_keys"]),
            }
    base_metrics = models.get(base, {}).get("metrics", {})
    rows = list(models.values()) + [
        {"model": name, "source": "paper", "random_weights": False, "metrics": figures, "checkpoint": {}}
        for name, figures in PAPER_ROWS.items()
    ]
    for row in rows:
        row["delta"] = {
            bench: {
                key: round(value - base_metrics[bench][key], 4)
                for key, value in figures.items()
                if bench in base_metrics and key in base_metrics[bench]
            }
            for bench, figures in row["metrics"].items()
            if bench in benchmarks
        }
    return {"base": base, "benchmarks": benchmarks, "rows": rows}


def _fmt(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def table_markdown(table: dict, title: str = "Evaluation") -> str:
    """The main figure of each benchmark per model, its delta to the base in brackets."""
    benchmarks = table["benchmarks"]
    header = ["model"] + [f"{name} ({MAIN_METRIC[task]})" for name, task in benchmarks.items()]
    lines = [f"# {title}", ""]
    if any(row["random_weights"] for row in table["rows"]):
        lines += [RANDOM_WEIGHTS_BANNER, ""]
    lines += [
        f"Zero-shot top-1 accuracy (%) and retrieval mean recall (%, the mean of R@1/5/10 both ways); "
        f"(±x) = difference to the base model `{table['base']}`. Paper rows: SPEC 8 (the RS5M paper's table).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table["rows"]:
        label = row["model"] + (" (random init)" if row["random_weights"] else "")
        cells = [label]
        for name, task in benchmarks.items():
            key = MAIN_METRIC[task]
            value = row["metrics"].get(name, {}).get(key)
            delta = row["delta"].get(name, {}).get(key)
            cell = _fmt(value)
            if value is not None and delta is not None and row["model"] != table["base"]:
                cell += f" ({delta:+.2f})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(table: dict) -> str:
    """One row per model: every figure of every benchmark (`<benchmark>:<metric>`) and its delta."""
    columns = []
    for name in table["benchmarks"]:
        keys = sorted({key for row in table["rows"] for key in row["metrics"].get(name, {})})
        columns += [(name, key) for key in keys]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["model", "source", "random_weights"]
        + [f"{b}:{k}" for b, k in columns]
        + [f"{b}:{k}:delta" for b, k in columns]
    )
    for row in table["rows"]:
        values = [row["metrics"].get(b, {}).get(k) for b, k in columns]
        deltas = [row["delta"].get(b, {}).get(k) for b, k in columns]
        writer.writerow(
            [row["model"], row["source"], row["random_weights"]]
            + ["" if v is None else f"{v:.4f}" for v in values + deltas]
        )
    return buffer.getvalue()


def plot_table(table: dict, path: str | Path) -> None:
    """Grouped bars: the main figure of each benchmark, one bar per model (paper rows hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = list(table["benchmarks"].items())
    # Paper rows only where the paper has a figure for one of the plotted benchmarks.
    rows = [row for row in table["rows"] if row["source"] == "run" or set(row["metrics"]) & set(table["benchmarks"])]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(benchmarks) + 2), 4))
    width = 0.8 / max(1, len(rows))
    for index, row in enumerate(rows):
        values = [row["metrics"].get(name, {}).get(MAIN_METRIC[task], 0.0) for name, task in benchmarks]
        positions = [b + (index - (len(rows) - 1) / 2) * width for b in range(len(benchmarks))]
        label = row["model"] + (" (random init)" if row["random_weights"] else "")
        ax.bar(positions, values, width, label=label, hatch="//" if row["source"] == "paper" else None)
    ax.set_xticks(range(len(benchmarks)))
    ax.set_xticklabels([f"{name}\n{MAIN_METRIC[task]}" for name, task in benchmarks])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    title = "CLIP evaluation"
    if any(row["random_weights"] for row in rows):
        title += "\nRANDOM-INIT TOY MODELS: the numbers are meaningless"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def evaluation_table(records: list[str | Path], output_dir: str | Path, settings: TableSettings) -> dict:
    """Write results.{json,csv,md,png} to `output_dir` from the `evaluate` JSON files."""
    table = build_table([json.loads(Path(p).read_text()) for p in records], settings.train.base)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(table, indent=1) + "\n")
    (output_dir / "results.csv").write_text(table_csv(table))
    (output_dir / "results.md").write_text(table_markdown(table))
    plot_table(table, output_dir / "results.png")
    return table


def compare_runs(run_a: str | Path, run_b: str | Path) -> str:
    """Markdown: the models of two run folders' tables, labelled by run, deltas to RUN_A's base."""
    tables = []
    for run in (run_a, run_b):
        path = Path(run) / "results" / "eval" / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no evaluation table (run `snakemake evaluation` there)")
        tables.append(json.loads(path.read_text()))
    label_a, label_b = Path(run_a).resolve().name or str(run_a), Path(run_b).resolve().name or str(run_b)
    if label_a == label_b:
        label_a, label_b = "A", "B"
    records = []
    for label, table in ((label_a, tables[0]), (label_b, tables[1])):
        for row in table["rows"]:
            if row["source"] != "run":
                continue
            for bench, metrics in row["metrics"].items():
                records.append(
                    {
                        "model": f"{label}/{row['model']}",
                        "benchmark": bench,
                        "task": table["benchmarks"][bench],
                        "metrics": metrics,
                        "random_weights": row["random_weights"],
                    }
                )
    table = build_table(records, f"{label_a}/{tables[0]['base']}")
    return table_markdown(table, title=f"Evaluation: {label_a} vs {label_b}")
