"""The shards load with webdataset and, with the standard member names, with Hugging Face datasets."""

import pyarrow.parquet as pq
import pytest
from assembly_fakes import make_run
from schema_defaults import shard_settings

from rs5m.assemble.manifest import RS3
from rs5m.assemble.shards import write_subset_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"))
    out = {}
    for names in ("rs5m", "standard"):
        manifest = write_subset_shards(
            RS3,
            run / "results/rs3/final.parquet",
            run / names,
            run / names / "rs3.manifest.json",
            shard_settings(split={"val_fraction": 0.2}, shards={"target_bytes": 30_000, "member_names": names}),
            base_dir=run,
        )
        out[names] = [str(run / names / s.path) for s in manifest.shards if s.split == "train"]
    final = {r["uid"]: r for r in pq.read_table(run / "results/rs3/final.parquet").to_pylist()}
    return run, out, final


def test_webdataset_reads_rs5m_names(shards):

    run, urls, final = shards
    from rs5m.loader import web_dataset

    samples = list(web_dataset(urls["rs5m"]))
    assert samples and all(s["__key__"] in final for s in samples)
    for sample in samples:
        row = final[sample["__key__"]]
        assert sample["caption"].decode() == row["caption"]
        assert sample["img_name"].decode() == row["img_name"]
        assert sample["img_content"] == (run / row["image_path"]).read_bytes()


def test_loader_batches_clip_tensors(shards):
    from rs5m.loader import make_loader

    run, urls, final = shards
    batches = list(make_loader(urls["rs5m"], batch_size=8, shuffle=100))
    images = sum(b[0].shape[0] for b in batches)
    assert images == sum(1 for _ in __import__("rs5m.loader").loader.web_dataset(urls["rs5m"]))
    assert tuple(batches[0][0].shape[1:]) == (3, 224, 224)
    assert set(sum((list(b[1]) for b in batches), [])) <= {r["caption"] for r in final.values()}


def test_draft_preprocessing_close_to_full():
    import io

    import numpy as np
    from PIL import Image

    from rs5m.loader import FastClipPreprocess, clip_preprocess, decode_image

    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (20, 26, 3), dtype=np.uint8)).resize((1040, 800), Image.BICUBIC)
    buffer = io.BytesIO()
    coarse.save(buffer, format="JPEG", quality=92)
    data = buffer.getvalue()
    drafted = decode_image(data, 224)
    assert drafted.size == (520, 400)  # 1/2 scale: 1/4 would leave 200 px < 224
    full_image = decode_image(data)
    full = clip_preprocess()(full_image)
    # Same window, same resampling as torchvision, landscape and portrait: at most one 8-bit
    # level apart (1 / 255 / std ~ 0.015) at a few pixels
    one_level = 1 / 255 / min(0.26130258, 0.26862954, 0.27577711)
    portrait = full_image.rotate(90, expand=True)
    for image, reference in ((full_image, full), (portrait, clip_preprocess()(portrait))):
        difference = (FastClipPreprocess()(image) - reference).abs()
        assert float(difference.max()) <= one_level + 1e-5 and float(difference.mean()) < 1e-4
    fast = FastClipPreprocess()(drafted)
    assert fast.shape == full.shape == (3, 224, 224)
    assert float((fast - full).abs().mean()) < 0.01  # normalised units; the pixel std is ~1


def test_hf_datasets_reads_both_layouts(shards):
    """Standard names load without features; the rs5m names through load_hf (hf_features + a cast),
    with the captions as text, not their bytes' repr."""
    pytest.importorskip("datasets")
    from rs5m.assemble.split import split_of
    from rs5m.loader import load_hf

    run, urls, final = shards
    train = {uid for uid in final if split_of(uid, 0.2) == "train"}
    for names, image, caption in (("standard", "jpg", "txt"), ("rs5m", "img_content", "caption")):
        dataset = load_hf(
            {"train": urls[names]},
            member_names=names,
            subset="rs3",
            split="train",
            cache_dir=str(run / f"hf-cache-{names}"),
        )
        assert set(dataset["__key__"]) == train and len(dataset) == len(train)
        for row in dataset:
            source = final[row["__key__"]]
            assert row[caption] == source["caption"]
            assert row[image].mode == "RGB"
            assert row[image].size == __import__("PIL.Image", fromlist=["Image"]).open(run / source["image_path"]).size
            meta = row["json"]
            assert meta["uid"] == row["__key__"] and meta["img_name"] == source["img_name"]
            assert meta["geo"] == (source["geo"] or "") and meta["labels"] == "|".join(source["labels"] or [])
            if names == "rs5m":
                assert row["img_name"] == source["img_name"]
