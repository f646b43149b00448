"""The outlier stage's rules run by Snakemake on a tiny run folder (kept.parquet + shards made here)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from outlier_inputs import make_run, non_rs_like, rs_like, write_folder

from rs5m.configured import defaults
from rs5m.demo.rs3_tiny_models import build_tiny_clip
from rs5m.ledger import read_stats
from rs5m.pub11.outlier_threshold import top_percent_threshold

REPO = Path(__file__).resolve().parents[1]

# A stand-in for the frame's Snakefile and rules/common.smk: only what rules/pub11_outliers.smk uses.
SNAKEFILE = """
import os
from snakemake.utils import validate

configfile: "config.yaml"
validate(config, schema="schema.yaml")
PARTS = [f"{{i:04d}}" for i in range(config["parts"])]
LEDGER_FILES = []

SOURCES = ["laion2b"]
OUTLIERS = config["outliers"]
DETECTOR = OUTLIERS["detector"]

def repo_path(path):
    return path

def detector_weights(wildcards):
    return DETECTOR["weights"] or "results/pub11/rs_detector/weights.pt"

def outlier_clip_checkpoint():
    return []

include: "{rules}"
"""


@pytest.mark.workflow
def test_outlier_rules_end_to_end(tmp_path, request):
    make_run(tmp_path, {"0000": 7, "0001": 5}, corrupt={"000010002"})
    write_folder(tmp_path / "det/rs", rs_like, 6, seed=1)
    write_folder(tmp_path / "det/non_rs", non_rs_like, 6, seed=2)
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())["outliers"]
    demo["detector"].update(positive_dirs=["det/rs"], negative_dirs=["det/non_rs"], epochs=1)
    # A seeded random-init checkpoint (its open_clip config beside it), which the stage must call
    # random in its log.
    demo["clip"]["pretrained"] = str(build_tiny_clip(demo["clip"]["model"], tmp_path / "models" / "clip.pt"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"parts": 2, "outliers": demo}))
    fragment = {"outliers": yaml.safe_load((REPO / "config/schema.yaml").read_text())["properties"]["outliers"]}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"parts": {"type": "integer", "default": 2}, **fragment},
    }
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(rules=REPO / "rules/pub11_outliers.smk"))

    targets = [
        "results/pub11/outliers.parquet",
        "results/stats/fig13_grid.md",
        "results/stats/outlier_score_histograms.png",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            "--directory",
            str(tmp_path),
            "-s",
            str(tmp_path / "Snakefile"),
            *targets,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for rule in ("train_rs_detector", "score_part", "outlier_threshold", "outlier_qa"):
        assert f"rule {rule}:" in result.stderr
    all_stats = read_stats([tmp_path / "results/pub11/outliers.stats.json"])
    assert sum(s.rows_in for s in all_stats) == 12
    assert sum(s.dropped.get("undecodable_image", 0) for s in all_stats) == 1
    final = pq.read_table(tmp_path / "results/pub11/outliers.parquet")
    embeddings = np.load(tmp_path / "results/pub11/embeddings/0000.npy")  # stored for decontamination
    assert embeddings.shape[0] == pq.read_metadata(tmp_path / "results/pub11/scores/0000.parquet").num_rows
    # 11 scored pairs: clip top 90 % -> k = 10, rs top 80 % -> k = 9: at most 9 kept, at least 11 - 1 - 2
    assert 8 <= final.num_rows <= 9 + 2  # ties at the rs threshold may keep more (random tiny detector)
    assert final.num_rows == sum(s.kept for s in all_stats)
    assert "RANDOM weights" in (tmp_path / "logs/score_part/0000.log").read_text()
    assert (tmp_path / "results/pub11/rs_detector/metrics.json").exists()
    grid = (tmp_path / "results/stats/fig13_grid.md").read_text()
    first_column = [line.split(" | ")[1] for line in grid.splitlines() if line.startswith("| s ")]
    # ceil(11 x 1.00, 0.95, ...) pairs per level, and every pair tied at a threshold with them (one
    # seeded checkpoint scores every part, so a copy of an image in another part ties exactly).
    scores = pa.concat_tables([pq.read_table(p) for p in sorted(tmp_path.glob("results/pub11/scores/*.parquet"))])
    clip = scores.column("clip_score").to_numpy(zero_copy_only=False).astype(np.float64)
    clip = clip[~np.isnan(clip)]
    expected = [
        str(int((clip >= top_percent_threshold(clip, level)).sum())) for level in defaults("outliers", "qa_levels")
    ]
    assert expected[:2] == ["11", "11"] and first_column == expected
