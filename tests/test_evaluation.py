"""Evaluation stage: benchmarks read from disk, the tiny CLIP evaluated on both tasks, checkpoints
loaded GeoRSCLIP-style, and train_clip on shards of the `rs5m` member layout (with a resume)."""

import io
import json
import tarfile
from dataclasses import replace

import numpy as np
import pytest

from rs5m.configured import defaults
from rs5m.evaluation.benchmarks import class_name, read_retrieval, read_zeroshot

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from rs5m.demo.rs3_tiny_models import build_tiny_clip  # noqa: E402
from rs5m.evaluation.clip_models import embed_images, embed_texts  # noqa: E402
from rs5m.evaluation.evaluate import evaluate  # noqa: E402
from rs5m.evaluation.metrics import RS_PROMPT_TEMPLATES  # noqa: E402
from rs5m.evaluation.settings import BaseModel, EvaluateSettings, TrainSettings  # noqa: E402
from rs5m.evaluation.train_clip import train_clip  # noqa: E402
from rs5m.models import load_clip  # noqa: E402

TINY = "rs5m-tiny-clip"
EVALUATE = EvaluateSettings(batch_size=4, device="cpu", precision="fp32")
COLOURS = {"BareLand": (200, 180, 120), "dense_forest": (30, 110, 40), "SeaLake": (40, 80, 190)}


def jpeg(colour, size=48, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return str(build_tiny_clip(TINY, tmp_path_factory.mktemp("models") / "tiny.pt", seed=0))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for c, (folder, colour) in enumerate(COLOURS.items()):
        (root / folder).mkdir()
        for i in range(3):
            (root / folder / f"{i}.jpg").write_bytes(jpeg(colour, seed=10 * c + i))
    return root


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    (root / "images").mkdir()
    images = []
    for i in range(6):
        colour = list(COLOURS.values())[i % 3]
        (root / "images" / f"{i}.jpg").write_bytes(jpeg(colour, seed=100 + i))
        sentences = [{"raw": f"scene {i} caption {j}"} for j in range(1 + i % 3)]
        images.append({"filename": f"{i}.jpg", "split": "test" if i < 5 else "train", "sentences": sentences})
    (root / "dataset_demo.json").write_text(json.dumps({"images": images}))
    return root


def test_class_names_from_folders():
    assert class_name("BareLand") == "bare land"
    assert class_name("dense_forest") == "dense forest"
    assert class_name("SeaLake") == "sea lake"
    assert class_name("river") == "river"
    assert class_name("storage-tanks") == "storage tanks"


def test_read_benchmarks(scenes, captions):
    zeroshot = read_zeroshot("scenes", [str(scenes)], {"SeaLake": "lake"})
    # Classes in the sorted order of their folders (code points: upper case first).
    assert zeroshot.class_names == ["bare land", "lake", "dense forest"]
    assert zeroshot.labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    retrieval = read_retrieval("caps", [str(captions / "dataset_demo.json"), str(captions / "images")], "test")
    assert len(retrieval.image_paths) == 5  # image 5 is in the train split
    assert retrieval.caption_image == [0, 1, 1, 2, 2, 2, 3, 4, 4]
    with pytest.raises(ValueError, match="folders that do not exist"):
        read_zeroshot("scenes", [str(scenes)], {"Lake": "lake"})


def settings(**overrides):
    return {"model": TINY, "checkpoint": None, **overrides}


def test_zeroshot_path_on_a_folder_benchmark(tmp_path, tiny_clip, scenes):
    out = tmp_path / "eval.json"
    bench = {"paths": [str(scenes)], "format": "folder", "task": "zeroshot", "split": "test", "class_names": {}}
    record = evaluate(out, "scenes", bench, "base", settings(pretrained=tiny_clip), EVALUATE, 0)
    assert json.loads(out.read_text()) == record
    assert record["random_weights"] and record["images"] == 9
    # The accuracy the metric gives on the embeddings the model makes, computed by hand here.
    clip = load_clip(TINY, tiny_clip, None, "cpu")
    names = ["bare land", "sea lake", "dense forest"]  # BareLand, SeaLake, dense_forest
    texts = embed_texts(clip, [t.format(n) for n in names for t in RS_PROMPT_TEMPLATES], 8, "fp32")
    classifier = texts.reshape(3, len(RS_PROMPT_TEMPLATES), -1).mean(axis=1)
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    images = embed_images(clip, sorted(str(p) for p in scenes.rglob("*.jpg")), 4, 0, "fp32")
    predicted = (images @ classifier.T).argmax(axis=1)
    expected = 100 * np.mean(predicted == np.repeat([0, 1, 2], 3))
    assert record["metrics"]["top1"] == pytest.approx(expected)


def test_retrieval_path_on_a_karpathy_json(tmp_path, tiny_clip, captions):
    bench = {
        "paths": [str(captions / "dataset_demo.json"), str(captions / "images")],
        "format": "karpathy_json",
        "task": "retrieval",
        "split": "test",
        "class_names": {},
    }
    record = evaluate(tmp_path / "r.json", "caps", bench, "base", settings(pretrained=tiny_clip), EVALUATE, 0)
    metrics = record["metrics"]
    assert (record["images"], record["captions"]) == (5, 9)
    assert set(metrics) == {f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)} | {"mean_recall"}
    # Five images: every image is within the top 5 and top 10 of every caption.
    assert metrics["t2i_R@5"] == metrics["t2i_R@10"] == 100.0
    assert metrics["mean_recall"] == pytest.approx(np.mean([v for k, v in metrics.items() if k != "mean_recall"]))


def test_georsclip_style_partial_state_dict_reports_its_keys(tmp_path, tiny_clip):
    base = load_clip(TINY, tiny_clip, None, "cpu")
    state = {k: v.clone() for k, v in base.model.state_dict().items() if k.startswith("visual.")}
    state["visual.proj"] = torch.full_like(state["visual.proj"], 0.01)
    state["extra.head.weight"] = torch.zeros(2)
    checkpoint = tmp_path / "georsclip.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    loaded = load_clip(TINY, tiny_clip, str(checkpoint), "cpu")
    assert loaded.unexpected_keys == ["extra.head.weight"]
    assert "text_projection" in loaded.missing_keys and "logit_scale" in loaded.missing_keys
    assert not any(k.startswith("visual.") for k in loaded.missing_keys)
    assert torch.equal(loaded.model.visual.proj, state["visual.proj"])
    assert torch.equal(loaded.model.text_projection, base.model.text_projection)
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="none of its keys"):
        load_clip(TINY, tiny_clip, str(tmp_path / "other.pt"), "cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two train tars and a val tar in the `rs5m` member layout, with their manifest."""
    root = tmp_path_factory.mktemp("shards")
    entries = []
    for split, tar_index, count in (("train", 0, 7), ("train", 1, 6), ("val", 0, 3)):
        path = f"{split}/pub11-{split}-{tar_index:04d}.tar"
        (root / split).mkdir(exist_ok=True)
        with tarfile.open(root / path, "w") as tar:
            for i in range(count):
                key = f"{split}{tar_index}{i:04d}"
                colour = list(COLOURS.values())[i % 3]
                for ext, data in (
                    ("img_name", f"{key}.jpg".encode()),
                    ("img_content", jpeg(colour, seed=1000 * tar_index + i)),
                    ("caption", f"a satellite image of scene {i}".encode()),
                    ("json", b"{}"),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        entries.append({"path": path, "split": split, "samples": count})
    (root / "pub11.manifest.json").write_text(json.dumps({"shards": entries}))
    return root / "pub11.manifest.json"


def train_settings(tiny_clip, gpus=1, **overrides):
    """The configured train settings (the tiny model, on the CPU), with a short test budget."""
    configured = TrainSettings.from_config(defaults())
    train = replace(configured.train, samples=23, batch_size=4, shuffle=5, checkpoint_every=8, warmup_samples=4)
    return replace(
        configured,
        train=replace(train, gpus=gpus, **overrides),
        base=BaseModel(model=TINY, pretrained=tiny_clip),
        device="cpu",
        precision="fp32",
    )


def test_train_clip_sees_the_budget_and_resumes_after_a_kill(tmp_path, tiny_clip, shards, monkeypatch):
    import rs5m.evaluation.train_clip as module

    straight = train_clip(tmp_path / "a" / "model.pt", [shards], train_settings(tiny_clip), workers=1)
    assert straight["samples_seen"] == 23 and straight["steps"] == 6  # 5 x 4 + 3
    assert all(np.isfinite(straight["losses"]))
    assert (tmp_path / "a" / "model.pt.RS5M_RANDOM_WEIGHTS").exists()

    saves = []
    real_save = module.save_state

    def save_then_die(state, path):
        real_save(state, path)
        saves.append(state["samples_seen"])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(module, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_clip(tmp_path / "b" / "model.pt", [shards], train_settings(tiny_clip), workers=1)
    assert saves == [8] and not (tmp_path / "b" / "model.pt").exists()
    monkeypatch.setattr(module, "save_state", real_save)
    resumed = train_clip(tmp_path / "b" / "model.pt", [shards], train_settings(tiny_clip), workers=1)
    assert resumed["samples_seen"] == 23 and resumed["losses"][:2] == straight["losses"][:2]
    a = torch.load(tmp_path / "a" / "model.pt")
    b = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    base = torch.load(tiny_clip)
    assert not torch.equal(a["visual.proj"], base["visual.proj"])  # it did train
    # A resume state written with other settings is not resumed from: training starts over.
    other = train_clip(
        tmp_path / "b" / "model.pt",
        [shards],
        train_settings(tiny_clip, samples=8),
        workers=1,
    )
    assert (other["steps"], other["samples_seen"]) == (2, 8) and other["losses"][0] == straight["losses"][0]


def test_a_train_clip_checkpoint_reloaded_by_evaluate_gives_the_same_embeddings(tmp_path, tiny_clip, shards):
    output = tmp_path / "model.pt"
    train_clip(output, [shards], train_settings(tiny_clip, samples=8), workers=1)
    # The trained model as train_clip leaves it in memory is what it saved: rebuild it by hand.
    import open_clip

    model = open_clip.create_model(TINY, pretrained=None)
    model.load_state_dict(torch.load(output))
    model.eval()
    reloaded = load_clip(TINY, tiny_clip, str(output), "cpu")
    assert reloaded.missing_keys == [] and reloaded.unexpected_keys == []
    assert reloaded.random_weights  # trained from random init: still a toy
    texts = ["a satellite image of scene 1", "bare land"]
    ours = embed_texts(reloaded, texts, 8, "fp32")
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.encode_text(open_clip.get_tokenizer(TINY)(texts)), dim=-1)
    assert ours == pytest.approx(direct.numpy(), abs=1e-5)
    base = embed_texts(load_clip(TINY, tiny_clip, None, "cpu"), texts, 8, "fp32")
    assert not np.allclose(ours, base, atol=1e-4)


def test_train_clip_on_two_processes_sees_the_global_batch(tmp_path, tiny_clip, shards):
    """Two gloo processes under torchrun, 3 samples each per step: the global budget is met, only
    rank 0 writes, and since ClipLoss gathers the features with their gradients (averaged by DDP)
    the run matches one process with the global batch of 6."""
    from rs5m.evaluation.train_clip import STATE_NAME, train_clip_launch

    two = train_clip_launch(
        tmp_path / "two" / "model.pt", [shards], train_settings(tiny_clip, gpus=2, samples=12, batch_size=3), workers=1
    )
    assert (two["samples_seen"], two["steps"]) == (12, 2) and all(np.isfinite(two["losses"]))
    assert torch.load(tmp_path / "two" / STATE_NAME, weights_only=False)["samples_seen"] == 12
    reloaded = load_clip(TINY, tiny_clip, str(tmp_path / "two" / "model.pt"), "cpu")
    assert reloaded.missing_keys == [] and reloaded.unexpected_keys == []
    one = train_clip_launch(
        tmp_path / "one" / "model.pt", [shards], train_settings(tiny_clip, samples=12, batch_size=6), workers=1
    )
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-4)
    a, b = torch.load(tmp_path / "two" / "model.pt"), torch.load(tmp_path / "one" / "model.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
