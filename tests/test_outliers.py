import io
import json
import math
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from outlier_inputs import make_run, trained_detector
from PIL import Image
from schema_defaults import schema_defaults

from rs5m.demo.rs3_tiny_models import TINY_CLIP_NAME, register_tiny_clip
from rs5m.ledger import read_stats
from rs5m.models import load_clip
from rs5m.pub11.outlier_qa import fig13_grid, grid_markdown, outlier_qa
from rs5m.pub11.outlier_threshold import (
    LOW_BOTH,
    LOW_CLIP,
    LOW_RS,
    UNDECODABLE,
    apply_outlier_threshold,
    joint_keep,
    top_percent_threshold,
)
from rs5m.pub11.prompts import build_prompts
from rs5m.pub11.score_part import SCORES_SCHEMA, prompt_embedding, score_part
from rs5m.pub11.settings import OutlierSettings, ScoringSettings, ThresholdSettings
from rs5m.pub11.train_rs_detector import predict_rs_probability

OUTLIERS = schema_defaults("outliers")
SETTINGS = OutlierSettings.from_config({"outliers": OUTLIERS})
THRESHOLD = ThresholdSettings.from_config({"outliers": OUTLIERS})
SCORING = ScoringSettings.from_config({"outliers": OUTLIERS})
GRID_LEVELS = SETTINGS.qa_levels  # the paper's Fig. 13 levels, as configured

register_tiny_clip()  # the tiny architecture is known to open_clip before any load_clip


# ----------------------------------------------------------------------------------- threshold rule
def test_top_percent_counts_without_ties():
    scores = np.arange(1, 11, dtype=float)  # 1..10
    assert top_percent_threshold(scores, 90) == 2.0
    assert (scores >= top_percent_threshold(scores, 90)).sum() == 9
    assert (scores >= top_percent_threshold(scores, 100)).sum() == 10
    # 25 % of 10 = 2.5 -> ceil: 3 kept
    assert (scores >= top_percent_threshold(scores, 25)).sum() == 3
    # 95 % of 20 is exactly 19; float arithmetic would give 19.000000000000004 -> 20
    twenty = np.arange(20, dtype=float)
    assert (twenty >= top_percent_threshold(twenty, 95)).sum() == 19
    assert (twenty >= top_percent_threshold(twenty, 85)).sum() == 17


def test_ties_at_threshold_are_all_kept_and_equal_scores_share_a_fate():
    scores = np.array([5.0, 1.0, 5.0, 5.0, 5.0])
    t = top_percent_threshold(scores, 50)  # k = 3 -> the 3rd largest is a 5
    assert t == 5.0
    assert (scores >= t).tolist() == [True, False, True, True, True]
    same = np.full(7, 0.3)
    assert (same >= top_percent_threshold(same, 60)).all()


def test_tiny_sets():
    assert top_percent_threshold(np.array([0.2]), 80) == 0.2  # one row is always its own top
    assert top_percent_threshold(np.array([0.2, 0.9]), 50) == 0.9
    assert math.isinf(top_percent_threshold(np.array([]), 90))
    with pytest.raises(ValueError):
        top_percent_threshold(np.array([1.0]), 0)
    with pytest.raises(ValueError):
        top_percent_threshold(np.array([1.0]), 101)


def test_joint_keep_reasons_and_nan():
    clip = np.array([0.9, 0.1, 0.8, 0.05, np.nan, 0.7])
    rs = np.array([0.9, 0.8, 0.01, 0.02, 0.5, 0.7])
    keep, low_clip, low_rs, t = joint_keep(clip, rs, 60, 60)
    # 5 scored rows; k = 3: clip threshold 0.7 (0.9, 0.8, 0.7), rs threshold 0.7 (0.9, 0.8, 0.7)
    assert t["clip_score"] == 0.7 and t["rs_score"] == 0.7 and t["scored_rows"] == 5
    assert keep.tolist() == [True, False, False, False, False, True]
    assert low_clip.tolist() == [False, True, False, True, False, False]
    assert low_rs.tolist() == [False, False, True, True, False, False]


def _write_scores(path, uids, clip, rs):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {"uid": uids, "clip_score": np.asarray(clip, np.float32), "rs_score": np.asarray(rs, np.float32)},
            schema=SCORES_SCHEMA,
        ),
        path,
    )


def _kept(path, parts):
    rows = [
        {
            "uid": uid,
            "source": source,
            "url": f"http://x/{uid}",
            "caption": "c",
            "matched_keywords": ["aerial"],
            "part": part,
            "tar": f"results/pub11/download/{part}/00000.tar",
            "member": f"{uid}.jpg",
            "width": 10,
            "height": 10,
        }
        for part, items in parts.items()
        for uid, source in items
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_quantiles_are_global_across_parts_and_ledger_adds_up(tmp_path):
    # Part 0000 holds only low CLIP scores, part 0001 only high ones: per-part quantiles would keep
    # half of each part, global quantiles keep (almost) only part 0001.
    a = [(f"a{i}", "laion2b") for i in range(10)]
    b = [(f"b{i}", "cc3m" if i < 5 else "laion2b") for i in range(10)]
    kept = _kept(tmp_path / "kept.parquet", {"0000": a, "0001": b})
    _write_scores(tmp_path / "s/0000.parquet", [u for u, _ in a], np.linspace(0.10, 0.19, 10), np.full(10, 0.9))
    rs_b = np.full(10, 0.9)
    rs_b[[0, 9]] = 0.1  # b0 fails rs only... b0 also has the lowest clip in part b
    _write_scores(tmp_path / "s/0001.parquet", [u for u, _ in b], np.linspace(0.80, 0.89, 10), rs_b)
    out = tmp_path / "final.parquet"
    t = apply_outlier_threshold(
        kept,
        [tmp_path / "s/0000.parquet", tmp_path / "s/0001.parquet"],
        out,
        replace(THRESHOLD, clip_top_percent=50, rs_top_percent=90),
        thresholds_out=None,
    )
    # 20 pooled rows: clip top 50 % = 10 rows = all of part 0001; rs top 90 % = k 18 -> threshold 0.9 (18 at 0.9)
    assert t["clip_score"] == pytest.approx(0.80) and t["rs_score"] == pytest.approx(0.9)
    final = pq.read_table(out)
    assert sorted(final.column("uid").to_pylist()) == [f"b{i}" for i in range(1, 9)]
    assert final.column_names == pq.read_table(kept).column_names + ["clip_score", "rs_score"]
    assert final.schema.field("matched_keywords").type == pa.list_(pa.string())
    stats = {s.source: s for s in read_stats([tmp_path / "final.stats.json"])}
    assert stats["laion2b"].rows_in == 15 and stats["cc3m"].rows_in == 5
    assert stats["laion2b"].dropped == {LOW_CLIP: 10, LOW_RS: 1} and stats["laion2b"].kept == 4
    assert stats["cc3m"].dropped == {LOW_RS: 1} and stats["cc3m"].kept == 4
    drops = pq.read_table(tmp_path / "final.drops.parquet").to_pylist()
    assert len(drops) == 12 and all(d["stage"] == "outliers" for d in drops)
    assert {d["uid"]: d["reason"] for d in drops}["b9"] == LOW_RS


def test_both_reasons_counted_once_and_undecodable(tmp_path):
    items = [(f"u{i}", "wit") for i in range(5)]
    kept = _kept(tmp_path / "kept.parquet", {"0000": items})
    _write_scores(
        tmp_path / "s.parquet", [u for u, _ in items], [0.1, 0.9, 0.8, 0.7, np.nan], [0.1, 0.9, 0.8, 0.7, 0.5]
    )
    apply_outlier_threshold(
        kept,
        [tmp_path / "s.parquet"],
        tmp_path / "final.parquet",
        replace(THRESHOLD, clip_top_percent=75, rs_top_percent=75),
        thresholds_out=None,
    )
    (stats,) = read_stats([tmp_path / "final.stats.json"])
    assert stats.rows_in == 5 and stats.kept == 3
    assert stats.dropped == {LOW_BOTH: 1, UNDECODABLE: 1}
    reasons = {d["uid"]: d["reason"] for d in pq.read_table(tmp_path / "final.drops.parquet").to_pylist()}
    assert reasons == {"u0": "low_clip_score;low_rs_score", "u4": UNDECODABLE}


def test_stale_or_missing_scores_fail(tmp_path):
    kept = _kept(tmp_path / "kept.parquet", {"0000": [("u0", "wit"), ("u1", "wit")]})
    _write_scores(tmp_path / "s.parquet", ["u0"], [0.1], [0.1])
    with pytest.raises(ValueError, match="no score"):
        apply_outlier_threshold(kept, [tmp_path / "s.parquet"], tmp_path / "f.parquet", THRESHOLD, thresholds_out=None)
    _write_scores(tmp_path / "s.parquet", ["u0", "u1", "zz"], [0.1] * 3, [0.1] * 3)
    with pytest.raises(ValueError, match="not in"):
        apply_outlier_threshold(kept, [tmp_path / "s.parquet"], tmp_path / "f.parquet", THRESHOLD, thresholds_out=None)


# ------------------------------------------------------------------------------------------- grid
def test_fig13_grid_arithmetic():
    rng = np.random.default_rng(0)
    n = 1003
    clip, rs = rng.random(n), rng.random(n)
    grid = fig13_grid(clip, rs, GRID_LEVELS)
    assert grid.shape == (9, 9) and list(grid.columns)[0] == "c 100%" and grid.index[-1] == "s 60%"
    expected_edge = [math.ceil(n * level / 100) for level in GRID_LEVELS]  # N x 1.00, 0.95, ... rounded up
    assert grid.iloc[0].tolist() == expected_edge
    assert grid.iloc[:, 0].tolist() == expected_edge
    assert grid.iloc[0, 0] == n
    # every cell is the brute-force count of rows in both tops
    cs, rc = np.sort(clip)[::-1], np.sort(rs)[::-1]
    for r, s_level in enumerate(GRID_LEVELS):
        for c, c_level in enumerate(GRID_LEVELS):
            s_t, c_t = cs[math.ceil(n * s_level / 100) - 1], rc[math.ceil(n * c_level / 100) - 1]
            assert grid.iloc[r, c] == int(((clip >= s_t) & (rs >= c_t)).sum())
    # independent scores: the 60 % x 60 % cell is near 0.36 N, not the 0.6 N of correlated ones
    assert abs(grid.iloc[8, 8] - 0.36 * n) < 0.05 * n
    md = grid_markdown(grid)
    assert md.splitlines()[2].startswith("| s 100% | 1,003 | 953 |")


def test_qa_writes_grid_and_plots(tmp_path):
    items = [(f"u{i:03d}", "laion2b" if i % 2 else "yfcc15m") for i in range(40)]
    kept = _kept(tmp_path / "kept.parquet", {"0000": items})
    rng = np.random.default_rng(1)
    _write_scores(tmp_path / "s.parquet", [u for u, _ in items], rng.random(40), rng.random(40))
    out = tmp_path / "stats"
    grid = outlier_qa(
        kept,
        [tmp_path / "s.parquet"],
        out / "fig13_grid.csv",
        out / "fig13_grid.md",
        out / "fig13_grid.png",
        out / "outlier_score_histograms.png",
        SETTINGS,
    )
    assert grid.iloc[0].tolist() == [40, 38, 36, 34, 32, 30, 28, 26, 24]
    assert (out / "fig13_grid.csv").read_text().splitlines()[1].startswith("s 100%,40,38,36")
    for name in ("fig13_grid.png", "outlier_score_histograms.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------- CLIP models
def _image_batch(preprocess, seed=0):
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)) for _ in range(3)]
    return torch.stack([preprocess(im) for im in images])


def test_local_checkpoint_loads_through_config_path(tmp_path):
    torch.manual_seed(0)
    loaded = load_clip(TINY_CLIP_NAME, None, None, "cpu")
    model, preprocess = loaded.model, loaded.preprocess
    checkpoint = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    torch.manual_seed(123)  # a fresh random init differs from the saved one...
    fresh = load_clip(TINY_CLIP_NAME, None, None, "cpu").model
    torch.manual_seed(456)
    loaded = load_clip(TINY_CLIP_NAME, str(checkpoint), None, "cpu").model  # ...the loaded one does not
    batch = _image_batch(preprocess)
    with torch.inference_mode():
        saved_emb, fresh_emb, loaded_emb = (m.encode_image(batch) for m in (model, fresh, loaded))
    assert not torch.allclose(saved_emb, fresh_emb)
    torch.testing.assert_close(loaded_emb, saved_emb)
    with pytest.raises(RuntimeError, match="not a known tag or valid file"):
        load_clip(TINY_CLIP_NAME, str(tmp_path / "missing.pt"), None, "cpu")


def test_prompt_embedding_is_unit_mean_of_unit_vectors():
    torch.manual_seed(0)
    loaded = load_clip(TINY_CLIP_NAME, None, None, "cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts = build_prompts(SCORING.prompts.modifiers, SCORING.prompts.nouns)
    text = prompt_embedding(model, tokenizer, prompts)
    with torch.inference_mode():
        each = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)).float(), dim=-1)
    assert text.shape == (each.shape[1],)
    assert float(text.norm()) == pytest.approx(1.0, abs=1e-5)
    mean = each.mean(0)
    torch.testing.assert_close(text, mean / mean.norm())
    # averaging unnormalised embeddings would give another direction
    raw = model.encode_text(tokenizer(prompts)).float().mean(0).detach()
    assert not torch.allclose(text, raw / raw.norm(), atol=1e-4)


# ------------------------------------------------------------------------------ scoring a shard
def test_score_part_on_a_tiny_shard(tmp_path):
    weights, _, _ = trained_detector()
    torch.manual_seed(0)
    loaded = load_clip(TINY_CLIP_NAME, None, None, "cpu")
    clip, preprocess, tokenizer = loaded.model, loaded.preprocess, loaded.tokenizer
    checkpoint = tmp_path / "clip.pt"
    torch.save(clip.state_dict(), checkpoint)

    kept, images = make_run(tmp_path, {"0000": 5, "0001": 7}, corrupt={"000010003"})
    out = tmp_path / "results/pub11/scores/0001.parquet"
    table = score_part(
        kept,
        "0001",
        weights,
        out,
        replace(
            SCORING,
            clip=replace(SCORING.clip, model=TINY_CLIP_NAME, pretrained=str(checkpoint)),
            batch_size=2,
            device="cpu",
            precision="auto",
            reduced_decode=False,
        ),
        workers=2,
        embeddings_out=None,
        root=tmp_path,
    )
    written = pq.read_table(out)
    assert written.schema.names == ["uid", "clip_score", "rs_score"]
    expected_uids = [f"0001{i:012x}" for i in range(7)]  # only part 0001, only listed images, in order
    assert written.column("uid").to_pylist() == expected_uids
    clip_scores = written.column("clip_score").to_numpy()
    rs_scores = written.column("rs_score").to_numpy()
    assert np.isnan(clip_scores[3]) and np.isnan(rs_scores[3])  # the corrupt member
    assert json.loads(written.schema.metadata[b"prompts"])[0] == "a remote sensing image."

    # the same scores computed image by image, without the DataLoader
    text = prompt_embedding(clip, tokenizer, build_prompts(SCORING.prompts.modifiers, SCORING.prompts.nouns))
    good = [i for i in range(7) if i != 3]
    for i in good:
        image = Image.open(io.BytesIO(images[expected_uids[i]])).convert("RGB")
        with torch.inference_mode():
            emb = torch.nn.functional.normalize(clip.encode_image(preprocess(image)[None]).float(), dim=-1)[0]
        assert clip_scores[i] == pytest.approx(float(emb @ text), abs=1e-5)
    files = []
    for i in good:
        path = tmp_path / f"img{i}.jpg"
        path.write_bytes(images[expected_uids[i]])
        files.append(path)
    np.testing.assert_allclose(rs_scores[good], predict_rs_probability(weights, files, device="cpu"), atol=1e-5)
    assert ((rs_scores[good] >= 0) & (rs_scores[good] <= 1)).all()
    assert table.num_rows == 7
