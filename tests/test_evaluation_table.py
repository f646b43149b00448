"""The evaluation table: rows per model, the paper's rows, deltas to the base, `rs5m compare`."""

import csv
import io
import json

import pytest

from rs5m.cli import main
from rs5m.evaluation.evaluation_table import PAPER_ROWS, RANDOM_WEIGHTS_BANNER, evaluation_table
from rs5m.evaluation.settings import TableSettings, TableTrain


def record(model, benchmark, task, metrics, random_weights=False):
    return {
        "model": model,
        "benchmark": benchmark,
        "task": task,
        "metrics": metrics,
        "random_weights": random_weights,
        "checkpoint": None,
        "missing_keys": [],
        "unexpected_keys": [],
    }


def recalls(value):
    figures = {f"{d}_R@{k}": value + k for d in ("i2t", "t2i") for k in (1, 5, 10)}
    figures["mean_recall"] = sum(figures.values()) / 6
    return figures


def write_run(folder, base_top1, trained_top1, random_weights=False):
    eval_dir = folder / "results" / "eval"
    eval_dir.mkdir(parents=True)
    paths = []
    for model, top1 in (("base", base_top1), ("trained", trained_top1)):
        for bench, task, metrics in (
            ("eurosat", "zeroshot", {"top1": top1}),
            ("rsicd", "retrieval", recalls(top1 / 2)),
        ):
            path = eval_dir / model / f"{bench}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(record(model, bench, task, metrics, random_weights)))
            paths.append(path)
    return evaluation_table(paths, eval_dir, TableSettings(train=TableTrain(base="base")))


def test_table_rows_paper_rows_and_deltas(tmp_path):
    table = write_run(tmp_path, 40.0, 55.5)
    rows = {row["model"]: row for row in table["rows"]}
    assert list(rows) == ["base", "trained", *PAPER_ROWS]
    assert rows["trained"]["delta"]["eurosat"]["top1"] == pytest.approx(15.5)
    assert rows["trained"]["delta"]["rsicd"]["mean_recall"] == pytest.approx(7.75)
    assert rows["paper: GeoRSCLIP ViT-B/32"]["delta"]["eurosat"]["top1"] == pytest.approx(61.40 - 40.0)
    markdown = (tmp_path / "results/eval/results.md").read_text()
    assert "| trained | 55.50 (+15.50) |" in markdown
    assert "| paper: GeoRSCLIP ViT-H/14 | 67.47 (+27.47) | 28.48 (+" in markdown
    assert RANDOM_WEIGHTS_BANNER not in markdown
    rows_csv = list(csv.DictReader(io.StringIO((tmp_path / "results/eval/results.csv").read_text())))
    assert [r["model"] for r in rows_csv] == ["base", "trained", *PAPER_ROWS]
    assert float(rows_csv[1]["rsicd:t2i_R@5"]) == pytest.approx(55.5 / 2 + 5)
    assert float(rows_csv[1]["eurosat:top1:delta"]) == pytest.approx(15.5)
    assert rows_csv[2]["rsicd:i2t_R@1"] == "12.1700"
    assert (tmp_path / "results/eval/results.png").read_bytes()[:4] == b"\x89PNG"


def test_random_weights_are_announced(tmp_path):
    write_run(tmp_path, 10.0, 12.0, random_weights=True)
    markdown = (tmp_path / "results/eval/results.md").read_text()
    assert RANDOM_WEIGHTS_BANNER in markdown and "| base (random init) |" in markdown


def test_compare_two_runs(tmp_path, capsys):
    write_run(tmp_path / "threshold_a", 40.0, 50.0)
    write_run(tmp_path / "threshold_b", 40.0, 53.0)
    assert main(["compare", str(tmp_path / "threshold_a"), str(tmp_path / "threshold_b")]) == 0
    out = capsys.readouterr().out
    assert "# Evaluation: threshold_a vs threshold_b" in out
    assert "| threshold_a/trained | 50.00 (+10.00) |" in out
    assert "| threshold_b/trained | 53.00 (+13.00) |" in out
    assert main(["compare", str(tmp_path / "threshold_a"), str(tmp_path / "missing")]) == 2


def test_card_evaluation_section(tmp_path):
    from rs5m.assemble.dataset_card import evaluation_lines

    assert evaluation_lines(None) == []
    write_run(tmp_path, 40.0, 55.5, random_weights=True)
    lines = evaluation_lines(tmp_path / "results/eval/results.md")
    assert lines[0] == "## Evaluation" and "# Evaluation" not in lines
    assert RANDOM_WEIGHTS_BANNER in lines
    assert "| trained (random init) | 55.50 (+15.50) | 33.08 (+7.75) |" in lines


def test_full_config_names_the_papers_benchmarks():
    """config/rs5m.yaml's benchmark names are the keys of the paper's rows, so they line up."""
    import yaml
    from conftest import REPO

    benchmarks = yaml.safe_load((REPO / "config/rs5m.yaml").read_text())["evaluation"]["benchmarks"]
    tasks = {name: settings["task"] for name, settings in benchmarks.items()}
    assert tasks == {
        "eurosat": "zeroshot",
        "resisc45": "zeroshot",
        "aid": "zeroshot",
        "rsitmd": "retrieval",
        "rsicd": "retrieval",
    }
    for figures in PAPER_ROWS.values():
        assert set(figures) == set(tasks)
        assert all(("top1" in figures[name]) == (task == "zeroshot") for name, task in tasks.items())
