"""BLIP-2 candidates with tiny offline models, ranking and rotation selection on fixed embeddings."""

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from schema_defaults import schema_defaults

from rs5m.demo.rs3_tiny_models import build_tiny_blip2, build_tiny_clip, register_tiny_clip
from rs5m.ledger import drops_path, read_stats, stats_path
from rs5m.models import is_random_weights
from rs5m.rs3 import rs3_caption as cap
from rs5m.rs3.rs3_final import FINAL_COLUMNS, collect_final
from rs5m.rs3.settings import CaptionSettings

CAPTION = schema_defaults("caption")
# Nucleus sampling as configured (20 candidates), short captions for the tiny model.
SAMPLING = {
    "num_candidates": CAPTION["num_candidates"],
    "top_k": CAPTION["top_k"],
    "top_p": CAPTION["top_p"],
    "max_length": 12,
}


def test_top_indices_order_and_ties():
    assert cap.top_indices(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]
    assert cap.top_indices(np.array([0.3]), 5).tolist() == [0]


def test_rotation_variance_known_values():
    rotated = np.array([[1.0, 0.0], [0.0, 1.0]])  # two "angles"
    texts = np.array([[1.0, 1.0], [1.0, 0.0]])
    # text 0 has cosine 0.7071 at both angles (variance 0); text 1 has 1 and 0 (variance 0.25).
    assert np.allclose(cap.rotation_variance(rotated, texts), [0.0, 0.25])


def _unit(angle_deg):
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


def test_select_candidates_on_fixed_embeddings():
    image = _unit(0)
    # CLIP A: candidate i sits at angle 5*i degrees from the image: A ranks 0, 1, 2, ... in order.
    texts_a = np.stack([_unit(5 * i) for i in range(20)])
    # CLIP B reverses the order among A's top 10: B ranks 9, 8, ..., so B's top 5 are 9..5.
    texts_b = np.full((20, 3), np.nan)
    for i in range(10):
        texts_b[i] = _unit(5 * (9 - i))
    # Rotations: image embeddings at 12 angles around the x-y circle. A unit text in that plane
    # has cosines cos(30k - t): variance 0.5 whatever t. Candidate 7 gets a small z component,
    # which shrinks its variance (0.5 / 1.04) but keeps it in B's top 5 (9, 8, 7, 6, 5).
    rotated = np.stack([_unit(30 * k) for k in range(12)])
    texts_b[7] = _unit(10) + np.array([0.0, 0.0, 0.2])
    selection = cap.select_candidates(image, texts_a, image, texts_b, rotated, keep_a=10, keep_b=5)
    assert selection.kept_a.tolist() == list(range(10))
    assert selection.kept_b[0] == 9 and set(selection.kept_b.tolist()) == {9, 8, 7, 6, 5}
    assert selection.top == 9
    assert selection.ssl == 7
    assert np.isnan(selection.clip_b_scores[10:]).all() and np.isnan(selection.variances[:5]).all()


def test_final_caption_seeded_choice_and_empty_meta():
    caption, choice = cap.final_caption("Meta sentence.", "top words", "ssl words", "uid-1", seed=0)
    assert caption == "Meta sentence. " + ("top words" if choice == "top_cap" else "ssl words")
    assert cap.final_caption("Meta sentence.", "top words", "ssl words", "uid-1", seed=0)[1] == choice
    choices = {cap.final_caption("", "t", "s", f"u{i}", 0)[1] for i in range(20)}
    assert choices == {"top_cap", "ssl_cap"}
    assert cap.final_caption("", "t", "s", "u0", 0)[0] in ("t", "s")  # MillionAID: no leading space


def test_rotations_twelve_same_size():
    image = Image.new("RGB", (40, 30), (255, 0, 0))
    rotated = cap.rotations(image, CAPTION["rotations"]["count"], CAPTION["rotations"]["step_degrees"])
    assert len(rotated) == 12 and all(r.size == (40, 30) for r in rotated)
    assert rotated[0] is image and rotated[3].getpixel((0, 0)) == (0, 0, 0)  # 90 deg: black corner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "blip2": str(build_tiny_blip2(root / "blip2")),
        "clip_a": str(build_tiny_clip("rs5m-tiny-clip", root / "a.pt")),
        "clip_b": str(build_tiny_clip("rs5m-tiny-clip-rn", root / "b.pt")),
    }


def test_register_tiny_clip_is_idempotent():
    import open_clip

    assert register_tiny_clip() == register_tiny_clip() == "rs5m-tiny-clip"
    assert "rs5m-tiny-clip-rn" in open_clip.list_models()


def test_generation_returns_twenty_candidates(tiny):
    processor, model = cap.load_blip2(tiny["blip2"], lora=None, device="cpu", dtype="auto")
    images = [Image.new("RGB", (50, 40), (i * 60, 100, 30)) for i in range(3)]
    out = cap.generate_candidates(processor, model, images, **SAMPLING, seed=1)
    assert [len(group) for group in out] == [20, 20, 20]
    assert all(isinstance(t, str) for group in out for t in group)
    again = cap.generate_candidates(processor, model, images, **SAMPLING, seed=1)
    assert again == out  # seeded sampling is reproducible


def test_random_weight_models_are_marked_and_logged(tiny, caplog):
    assert is_random_weights(tiny["blip2"]) and is_random_weights(tiny["clip_a"])
    with caplog.at_level("WARNING"):
        cap.load_blip2(tiny["blip2"], lora=None, device="cpu", dtype="auto")
    assert "RANDOM WEIGHTS" in caplog.text


def test_lora_adapter_is_applied(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Blip2ForConditionalGeneration

    base = Blip2ForConditionalGeneration.from_pretrained(tiny["blip2"])
    config = LoraConfig(
        r=4,
        lora_alpha=4,
        lora_dropout=0.05,
        target_modules=["self_attn.qkv", "self_attn.projection"],
        init_lora_weights=False,
    )
    torch.manual_seed(0)
    get_peft_model(base, config).save_pretrained(tmp_path / "lora")
    _, plain = cap.load_blip2(tiny["blip2"], lora=None, device="cpu", dtype="auto")
    _, adapted = cap.load_blip2(tiny["blip2"], lora=str(tmp_path / "lora"), device="cpu", dtype="auto")
    name = "vision_model.encoder.layers.0.self_attn.qkv.weight"
    plain_weight = (
        dict(plain.named_parameters())[f"model.{name}"]
        if f"model.{name}" in dict(plain.named_parameters())
        else dict(plain.named_parameters())[name]
    )
    adapted_params = dict(adapted.named_parameters())
    adapted_weight = adapted_params.get(f"model.{name}", adapted_params.get(name))
    assert adapted_weight is not None and not torch.allclose(plain_weight, adapted_weight)


def test_caption_part_end_to_end(tiny, tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"img{i}.jpg"
        Image.new("RGB", (64, 48), (40 * i, 120, 200)).save(path)
        paths.append(str(path))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    rows = [
        {
            "uid": "a1",
            "dataset": "fmow",
            "img_name": "fmow_a.jpg",
            "image_path": paths[0],
            "meta_caption": "A satellite image shows dam.",
            "labels": ["dam"],
            "geo": "{}",
        },
        {
            "uid": "b2",
            "dataset": "millionaid",
            "img_name": "millionaid_P1.jpg",
            "image_path": paths[1],
            "meta_caption": "",
            "labels": [],
            "geo": "{}",
        },
        {
            "uid": "c3",
            "dataset": "millionaid",
            "img_name": "millionaid_P2.jpg",
            "image_path": str(broken),
            "meta_caption": "",
            "labels": [],
            "geo": "{}",
        },
    ]
    part = tmp_path / "0000.parquet"
    pq.write_table(pa.Table.from_pylist(rows), part)
    out, candidates = tmp_path / "out" / "0000.parquet", tmp_path / "out" / "0000.candidates.parquet"
    configured = CaptionSettings.from_config({"caption": CAPTION})
    settings = replace(
        configured,
        blip2=replace(configured.blip2, model=tiny["blip2"]),
        clip_a=replace(configured.clip_a, model="rs5m-tiny-clip", pretrained=tiny["clip_a"]),
        clip_b=replace(configured.clip_b, model="rs5m-tiny-clip-rn", pretrained=tiny["clip_b"]),
        max_length=12,
        batch_size=2,
        device="cpu",
        seed=0,
    )
    stats = cap.caption_part(part, out, candidates, settings)
    by_source = {s.source: s for s in stats}
    assert (by_source["millionaid"].rows_in, by_source["millionaid"].kept) == (2, 1)
    assert by_source["millionaid"].dropped == {"unreadable_image": 1}
    assert read_stats([stats_path(out)])[0].source == "fmow"
    assert pq.read_table(drops_path(out)).column("uid").to_pylist() == ["c3"]
    table = {r["uid"]: r for r in pq.read_table(out).to_pylist()}
    cands = pq.read_table(candidates).to_pylist()
    assert len(cands) == 40
    for uid, row in table.items():
        mine = [c for c in cands if c["uid"] == uid]
        top = [c for c in mine if c["is_top_cap"]]
        ssl = [c for c in mine if c["is_ssl_cap"]]
        assert len(top) == 1 and len(ssl) == 1
        assert top[0]["clip_b_rank"] == 1 and top[0]["text"] == row["top_cap"]
        assert ssl[0]["text"] == row["ssl_cap"] and ssl[0]["clip_b_rank"] is not None
        assert sum(c["clip_a_rank"] is not None for c in mine) == 10
        assert sum(c["clip_b_rank"] is not None for c in mine) == 5
        assert sum(c["rotation_variance"] is not None for c in mine) == 5
        assert row["caption"].endswith(row[row["caption_choice"]])
    assert table["a1"]["caption"].startswith("A satellite image shows dam. ")
    assert table["b2"]["caption"] == table["b2"][table["b2"]["caption_choice"]]
    final = tmp_path / "final.parquet"
    assert collect_final([out], final) == 2
    assert pq.read_table(final).column_names[:10] == list(FINAL_COLUMNS)
