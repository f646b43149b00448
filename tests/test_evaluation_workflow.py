"""`snakemake evaluation` on a copy of the finished demo: the tiny CLIP fine-tuned on the demo's
shards and evaluated with the base on the demo's two benchmarks; `all` does not include it."""

import json
import shutil

from conftest import planned_jobs, snakemake

from rs5m.evaluation.evaluation_table import RANDOM_WEIGHTS_BANNER


def test_evaluation_target_on_the_demo(demo_run, tmp_path):
    assert not (demo_run / "results/eval").exists()  # not part of the default target
    run = tmp_path / "run"
    shutil.copytree(demo_run, run, symlinks=True)  # the shared demo's outputs stay as they are
    jobs = planned_jobs(snakemake(run, "-n", "--cores", "2", "evaluation").stdout)
    assert jobs == {
        "evaluation_demo_benchmarks": 1,
        "train_clip": 1,
        "evaluate": 4,
        "evaluation_table": 1,
        "evaluation": 1,
    }
    snakemake(run, "--cores", "2", "evaluation")
    summary = json.loads((run / "results/train_clip/model.pt.json").read_text())
    assert summary["samples_seen"] == 48 and summary["steps"] == 6  # evaluation.train in config.yaml
    assert all(loss == loss and abs(loss) < 100 for loss in summary["losses"])
    table = json.loads((run / "results/eval/results.json").read_text())
    assert table["benchmarks"] == {"demo_scenes": "zeroshot", "demo_captions": "retrieval"}
    rows = {row["model"]: row for row in table["rows"]}
    assert rows["base"]["random_weights"] and rows["trained"]["random_weights"]
    record = json.loads((run / "results/eval/trained/demo_captions.json").read_text())
    assert (record["images"], record["missing_keys"], record["unexpected_keys"]) == (10, [], [])
    assert record["checkpoint"] == "results/train_clip/model.pt"
    assert set(json.loads((run / "results/eval/base/demo_scenes.json").read_text())["classes"]) == {
        "farmland", "bare land", "dense forest", "sea lake",
    }  # fmt: skip
    assert RANDOM_WEIGHTS_BANNER in (run / "results/eval/results.md").read_text()
    # Once the table exists, the card gains its Evaluation section (and only the card reruns).
    assert planned_jobs(snakemake(run, "-n", "--cores", "2").stdout) == {"dataset_card": 1, "all": 1}
    snakemake(run, "--cores", "2", "results/shards/README.md")
    card = (run / "results/shards/README.md").read_text()
    assert "## Evaluation" in card and RANDOM_WEIGHTS_BANNER in card
    assert "## Evaluation" not in (demo_run / "results/shards/README.md").read_text()
