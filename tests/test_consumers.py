"""The demo's shards in the tools researchers train with (issue: open_clip, Hugging Face datasets,
webdataset, the authors' loader), each run on the shared demo run and on rebuilds of it that rerun
only the shard rules: `shards.member_names: standard`, and `shards.count: 32`. The snippets run here
are the dataset card's own (`rs5m.assemble.card_loading`). No hub access: the model is a tiny random-init one.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, snakemake
from PIL import Image

from rs5m.assemble.card_loading import (
    HF_SPLITS,
    authors_loader_snippet,
    hf_snippet,
    metafile_snippet,
    open_clip_arguments,
    webdataset_snippet,
)
from rs5m.assemble.manifest import SUBSETS, Manifest
from rs5m.assemble.split import SPLITS

pytestmark = pytest.mark.workflow
MANIFESTS = [f"results/shards/{subset}.manifest.json" for subset in SUBSETS]


def _rebuild(demo_run, target, shards: dict):
    """A copy of the demo run with other `shards` settings; only the shard jobs rerun."""
    shutil.copytree(demo_run, target, symlinks=True)
    override = target / "shards.yaml"
    override.write_text(yaml.safe_dump({"shards": shards}))
    result = snakemake(
        target,
        "--cores",
        "2",
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        str(override),
        "--forcerun",
        "shards",
        "--",
        *MANIFESTS,
    )
    assert "rule shards:" in result.stdout + result.stderr
    return target


@pytest.fixture(scope="module")
def standard_run(demo_run, tmp_path_factory):
    return _rebuild(demo_run, tmp_path_factory.mktemp("consumers") / "standard", {"member_names": "standard"})


@pytest.fixture(scope="module")
def count_run(demo_run, tmp_path_factory):
    return _rebuild(demo_run, tmp_path_factory.mktemp("consumers") / "count32", {"count": 32})


def _manifests(run):
    return [Manifest.read(run / path) for path in MANIFESTS]


def _captions(run) -> dict[str, str]:
    """uid -> the caption the shards must carry (PUB11 after the meta-caption step)."""
    import tarfile

    out = {}
    for manifest in _manifests(run):
        for shard in manifest.shards:
            with tarfile.open(run / "results/shards" / shard.path) as archive:
                for info in archive:
                    key, _, ext = info.name.partition(".")
                    if ext in ("caption", "txt"):
                        out[key] = archive.extractfile(info).read().decode("utf-8")
    return out


def _final_uids(run) -> dict[str, set[str]]:
    return {
        subset: set(pq.read_table(run / f"results/{subset}/final.parquet", columns=["uid"]).column("uid").to_pylist())
        for subset in SUBSETS
    }


def _expected(manifest: Manifest, split: str) -> int:
    return sum(counts[split] for counts in manifest.counts.values())


def _run_snippet(code: str) -> dict:
    scope: dict = {}
    exec(compile(code, "<card snippet>", "exec"), scope)
    return scope


@pytest.mark.parametrize("layout", ["rs5m", "standard"])
def test_webdataset_decodes_every_sample(layout, demo_run, standard_run):
    run = demo_run if layout == "rs5m" else standard_run
    root = str(run / "results/shards")
    captions, finals = _captions(run), _final_uids(run)
    image_key, caption_key = ("img_content", "caption") if layout == "rs5m" else ("jpg", "txt")
    for manifest in _manifests(run):
        assert manifest.member_names == layout
        seen = set()
        for split in SPLITS:
            keys = []
            for sample in _run_snippet(webdataset_snippet(manifest, split, root))["dataset"]:
                image, caption = sample[image_key], sample[caption_key]
                assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size[0] > 0
                assert caption == captions[sample["__key__"]] and caption
                assert sample["json"]["uid"] == sample["__key__"] and sample["json"]["split"] == split
                keys.append(sample["__key__"])
            assert len(keys) == len(set(keys)) == _expected(manifest, split)
            seen.update(keys)
        assert seen == finals[manifest.subset]


@pytest.mark.parametrize("layout", ["rs5m", "standard"])
def test_hugging_face_loads_both_subsets(layout, demo_run, standard_run, tmp_path, monkeypatch):
    """standard: `load_dataset("webdataset")` without `features=`; rs5m: `load_hf` (hf_features).
    Both splits of both subsets, the manifest's counts, captions as text."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    run = demo_run if layout == "rs5m" else standard_run
    captions = _captions(run)
    image_key, caption_key = ("img_content", "caption") if layout == "rs5m" else ("jpg", "txt")
    for manifest in _manifests(run):
        dataset = _run_snippet(hf_snippet(manifest, str(run / "results/shards")))["dataset"]
        assert set(dataset) == set(HF_SPLITS.values())
        for split, name in HF_SPLITS.items():
            assert dataset[name].num_rows == _expected(manifest, split)
            rows = dataset[name]
            for row in rows:
                assert isinstance(row[caption_key], str) and row[caption_key] == captions[row["__key__"]]
                assert row["json"]["uid"] == row["__key__"] and row["json"]["subset"] == manifest.subset
            assert rows[0][image_key].mode == "RGB"


def test_open_clip_trains_one_epoch_on_standard_shards(standard_run, tmp_path):
    """`open_clip_train.main` as the card gives it (tiny random-init model, CPU): one batch holds the
    whole train split, so the epoch sees every train sample; the loss is finite and the validation
    pass sees every val sample."""
    manifests = _manifests(standard_run)
    train = sum(_expected(m, "train") for m in manifests)
    val = sum(_expected(m, "val") for m in manifests)
    arguments = open_clip_arguments(
        manifests, str(standard_run / "results/shards"), model="rs5m-tiny-clip", batch_size=train, workers=1
    )
    arguments += [
        "--logs",
        str(tmp_path / "logs"),
        "--name",
        "demo",
        "--precision",
        "fp32",
        "--seed",
        "0",
        "--save-frequency",
        "0",
        "--log-every-n-steps",
        "1",
        "--device",
        "cpu",
    ]
    wrapper = (
        "import sys; from rs5m.demo.rs3_tiny_models import register_tiny_clip; register_tiny_clip(); "
        "from open_clip_train.main import main; main(sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *arguments], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    log = (tmp_path / "logs/demo/out.log").read_text()
    train_lines = [line for line in log.splitlines() if "Train Epoch: 0" in line]
    assert train_lines and f"[{train}/{train} (100%)]" in train_lines[-1], log[-3000:]
    loss = float(train_lines[-1].split("Contrastive_loss: ")[1].split()[0])
    assert math.isfinite(loss) and loss > 0
    [metrics] = [
        json.loads(line) for line in (tmp_path / "logs/demo/checkpoints/results.jsonl").read_text().splitlines()
    ]
    assert metrics["num_samples"] == val and math.isfinite(metrics["clip_val_loss"])


def test_authors_loader_reads_a_count_32_build(count_run):
    """Read as the RS5M authors' loader does: `{pub11,rs3}-{split}-{0000..0031}.tar`, `img_name`,
    `img_content`, `caption` decoded as UTF-8; every sample found, and the metafiles' first two
    columns (name, caption) agree with the shards."""
    import pandas as pd

    shards = count_run / "results/shards"
    manifests = _manifests(count_run)
    assert all(
        m.count == 32 and len([s for s in m.shards if s.split == split]) == 32 for m in manifests for split in SPLITS
    )
    finals = _final_uids(count_run)
    scope = _run_snippet(authors_loader_snippet(str(shards)))
    by_name: dict[str, str] = {}
    for split, dataset in (("train", scope["train"]), ("val", scope["val"])):
        keys = []
        for sample in dataset:
            assert isinstance(sample["img_content"], Image.Image) and sample["img_content"].mode == "RGB"
            assert isinstance(sample["caption"], str) and isinstance(sample["img_name"], str)
            by_name[sample["img_name"]] = sample["caption"]
            keys.append(sample["__key__"])
        assert len(keys) == len(set(keys)) == sum(_expected(m, split) for m in manifests)
    assert len(by_name) == sum(len(uids) for uids in finals.values())
    metafiles = count_run / "results/metafiles"
    for name in ("pub11_train_metadata.csv", "pub11_validation_metadata.csv", "rs3_train_val_metadata.csv"):
        table = pd.read_csv(metafiles / name, keep_default_na=False)
        assert len(table)
        for image_name, caption in zip(table.iloc[:, 0], table.iloc[:, 1]):
            assert by_name[image_name] == caption
    scope = _run_snippet(metafile_snippet(str(count_run / "results")))
    assert list(scope["names"]) and all(by_name[n] == c for n, c in zip(scope["names"], scope["captions"]))


def test_card_shows_the_tested_snippets(demo_run, standard_run):
    """The demo's card carries the Loading section with the snippets run above (paths relative)."""
    text = (demo_run / "results/shards/README.md").read_text()
    assert "## Loading" in text
    manifests = _manifests(demo_run)
    assert webdataset_snippet(manifests[0], "train").rstrip() in text
    assert hf_snippet(manifests[0]).rstrip() in text
    assert "shards.member_names: standard" in text and "shards.count: 32" in text
    from rs5m.assemble.card_loading import loading_section

    standard = "\n".join(loading_section(_manifests(standard_run)))
    assert "python -m open_clip_train.main --dataset-type webdataset" in standard
    assert hf_snippet(_manifests(standard_run)[0]).rstrip() in standard


def test_image_bytes_unchanged_between_layouts(demo_run, standard_run):
    """The standard rebuild holds the same images, byte for byte, as the default layout."""
    import tarfile

    def images(run, ext):
        out = {}
        for manifest in _manifests(run):
            for shard in manifest.shards:
                with tarfile.open(run / "results/shards" / shard.path) as archive:
                    for info in archive:
                        key, _, member = info.name.partition(".")
                        if member == ext or (ext == "image" and member in ("jpg", "png", "webp", "tif")):
                            out[key] = archive.extractfile(info).read()
        return out

    default, standard = images(demo_run, "img_content"), images(standard_run, "image")
    assert default and default == standard
    assert all(Image.open(io.BytesIO(data)).size for data in list(default.values())[:5])
