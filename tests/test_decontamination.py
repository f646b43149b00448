"""Eval-set decontamination: readers, the pHash matcher on planted transforms, the embedding path
with the demo's tiny CLIP, drop/report and the ledger."""

from __future__ import annotations

import io
import json
import random
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rs5m.configured import defaults
from rs5m.confirm import (
    CONFIRM_HIGHPASS,
    MAX_COLOR_DIFFERENCE,
    MAX_LAYOUT_DIFFERENCE,
    confirm_thumb,
    confirmation_score,
    is_confirmed,
)
from rs5m.decontamination.decontaminate import decontaminate
from rs5m.decontamination.decontamination_eval import eval_set_features
from rs5m.decontamination.decontamination_report import write_report
from rs5m.decontamination.decontamination_rs3_features import rs3_features
from rs5m.decontamination.matching import (
    EVAL_SCHEMA,
    FLAT_LIMIT,
    REASON,
    dihedral_phashes,
    embedding_index,
    embedding_search,
    hamming,
    hash_search,
)
from rs5m.decontamination.settings import (
    Action,
    DecontaminationSettings,
    Embedding,
    ScoringModel,
)
from rs5m.demo.aerial_scenes import aerial_scene
from rs5m.demo.decontamination_demo_eval import distinct_images, planted_copies
from rs5m.demo.rs3_demo_inputs import _scene
from rs5m.demo.rs3_tiny_models import build_tiny_clip
from rs5m.demo.web import render_aerial
from rs5m.eval_sets import read_eval_set
from rs5m.ledger import read_stats
from rs5m.phash import phash_int
from rs5m.settings import ClipModel

REPO = Path(__file__).resolve().parents[1]
SETTINGS = DecontaminationSettings.from_config(defaults())  # as configured
DEFAULT_RADIUS = SETTINGS.phash.radius
CONFIRM_SIZE = SETTINGS.confirm.size
CONFIRM_THRESHOLD = SETTINGS.confirm.threshold


def settings(action="drop", radius=DEFAULT_RADIUS, embedding_threshold=None, clip=None):
    """The configured settings with this test's action (both subsets), pHash radius, embedding
    threshold (None: the embedding matcher off) and scoring CLIP ((model, pretrained) on the CPU)."""
    changed = replace(
        SETTINGS,
        action=Action(pub11=action, rs3=action),
        phash=replace(SETTINGS.phash, radius=radius),
        embedding=Embedding(
            enabled=embedding_threshold is not None,
            threshold=SETTINGS.embedding.threshold if embedding_threshold is None else embedding_threshold,
        ),
    )
    if clip is not None:
        model = ScoringModel(clip=ClipModel(*clip), device="cpu", precision="auto")
        changed = replace(changed, outliers=model)
    return changed


def _originals() -> list[Image.Image]:
    """Aerial scenes of the demo web and RS3 demo scenes (the demo's ground photos are left out:
    sky-over-ground layouts are pHash-close to each other by construction)."""
    return [render_aerial(n) for n in range(46)] + [_scene((256, 200), random.Random(n)) for n in range(8)]


def test_hash_path_recall_and_false_matches_on_planted_transforms():
    """Every planted kind (resize 0.5-2x, JPEG 50-95, rotations, flips, crops <= 5 %, brightness,
    combinations) of 54 images, and 240 distinct images, searched through the faiss index at the
    default radius: recall >= 0.98 and no distinct image matches."""
    rng = random.Random(13)
    originals = _originals()
    dataset = np.array([phash_int(im) for im in originals], dtype=np.int64)
    copies = [(k, name, copy) for k, im in enumerate(originals) for name, copy in planted_copies(im, rng)]
    assert {name.split("+")[0].rstrip("0123456789.") for _, name, _ in copies} >= {
        "resize",
        "jpeg",
        "rot",
        "flip_lr",
        "flip_tb",
        "crop",
        "bright",
    }
    distinct = distinct_images(240)
    eval_hashes = np.concatenate([dihedral_phashes(c) for _, _, c in copies] + [dihedral_phashes(d) for d in distinct])
    query, index_row, distance = hash_search(eval_hashes, dataset, DEFAULT_RADIUS)
    assert (distance <= DEFAULT_RADIUS).all()
    assert (hamming(dataset[query], eval_hashes[index_row]) == distance).all()
    eval_image = index_row // 8
    found = {(int(q), int(e)) for q, e in zip(query, eval_image)}
    hits = [(k, e) in found for e, (k, _, _) in enumerate(copies)]
    recall = sum(hits) / len(hits)
    false = {e for _, e in found if e >= len(copies)} | {e for q, e in found if e < len(copies) and copies[e][0] != q}
    print(f"planted copies {len(copies)}, recall {recall:.4f}; distinct {len(distinct)}, false matches {len(false)}")
    assert recall >= 0.98
    assert not false
    # Rotations and flips match exactly through the dihedral hashes.
    for e, (k, name, _) in enumerate(copies):
        if name in ("rot90", "rot180", "rot270", "flip_lr", "flip_tb"):
            assert (k, e) in found


# Distinct procedural scenes (rs5m.demo.aerial_scenes, 160 px) whose pHash lies within 12 bits (the
# smallest distance over the eight variants), found by a search over 20,000 x 5,000 seeded scenes:
# (dataset scene, eval scene, bits).
DISTINCT_CLOSE_PAIRS = [
    (462, 1004828, 4),
    (1395, 1002410, 4),
    (868, 1001370, 6),
    (937, 1003081, 8),
    (1014, 1001407, 10),
    (343, 1001470, 12),
]


def test_confirmation_confirms_every_planted_kind_and_rejects_distinct_close_pairs():
    """Each planted kind of 8 demo aerial images, compared in the variant its pHash names, reaches
    the default confirmation threshold with agreeing colours; the distinct pHash-close pairs stay
    far below it."""
    rng = random.Random(5)
    for n in range(8):
        original = render_aerial(300 + n)
        hash_, thumb = phash_int(original), confirm_thumb(original, CONFIRM_SIZE)
        for name, copy in planted_copies(original, rng):
            variant = int(np.argmin(hamming(np.full(8, hash_), dihedral_phashes(copy))))
            confirmation = confirmation_score(thumb, confirm_thumb(copy, CONFIRM_SIZE), [variant])
            assert is_confirmed(confirmation, CONFIRM_THRESHOLD), (n, name, confirmation)
    for a, b, bits in DISTINCT_CLOSE_PAIRS:
        first, second = aerial_scene(a, 160), aerial_scene(b, 160)
        distances = hamming(np.full(8, phash_int(first)), dihedral_phashes(second))
        assert distances.min() == bits <= DEFAULT_RADIUS
        confirmation = confirmation_score(
            confirm_thumb(first, CONFIRM_SIZE), confirm_thumb(second, CONFIRM_SIZE), range(8)
        )
        assert confirmation.score < CONFIRM_THRESHOLD - 0.3, (a, b, confirmation)
        assert not is_confirmed(confirmation, CONFIRM_THRESHOLD)


def test_confirmation_needs_agreeing_colours():
    """A recoloured copy (CIELAB a* raised by 16, lightness kept) agrees in detail but not in colour:
    not confirmed."""
    import cv2

    original = render_aerial(301)
    lab = cv2.cvtColor(np.asarray(original.convert("RGB")), cv2.COLOR_RGB2LAB).astype(np.int16)
    lab[..., 1] += 16
    recoloured = Image.fromarray(cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB))
    confirmation = confirmation_score(
        confirm_thumb(original, CONFIRM_SIZE), confirm_thumb(recoloured, CONFIRM_SIZE), [0]
    )
    assert confirmation.score >= CONFIRM_THRESHOLD
    assert confirmation.color_difference > MAX_COLOR_DIFFERENCE
    assert not is_confirmed(confirmation, CONFIRM_THRESHOLD)


def test_confirmation_needs_the_same_layout():
    """An image made of one aerial scene's detail over the layout of the same scene turned by 180
    degrees (grayscale, so colours agree) agrees with the scene in the detail of every block, but its
    lightness is elsewhere: not confirmed. The scene darkened by a third is a copy: confirmed."""
    import cv2

    gray = np.asarray(render_aerial(302).convert("L"), dtype=np.float32)
    sigma = 3 * CONFIRM_HIGHPASS * gray.shape[0]  # well below the detail the score compares
    layout = cv2.GaussianBlur(np.rot90(gray, 2), (0, 0), sigma)
    hybrid = layout + gray - cv2.GaussianBlur(gray, (0, 0), sigma)

    def image(array: np.ndarray) -> Image.Image:
        return Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8)).convert("RGB")

    thumb = confirm_thumb(image(gray), CONFIRM_SIZE)
    moved = confirmation_score(thumb, confirm_thumb(image(hybrid), CONFIRM_SIZE), [0])
    assert moved.score >= CONFIRM_THRESHOLD and moved.color_difference <= MAX_COLOR_DIFFERENCE, moved
    assert moved.layout_difference > MAX_LAYOUT_DIFFERENCE
    assert not is_confirmed(moved, CONFIRM_THRESHOLD)
    darker = confirmation_score(thumb, confirm_thumb(image(gray * 2 / 3), CONFIRM_SIZE), [0])
    assert darker.layout_difference < MAX_LAYOUT_DIFFERENCE / 4, darker
    assert is_confirmed(darker, CONFIRM_THRESHOLD)


def _write_eval_table(path: Path, name: str, images: dict[str, Image.Image], folder: Path) -> None:
    """An eval-set table as decontamination_eval writes it (pHashes of the eight variants), with
    zero embeddings (the pHash path only)."""
    rows = []
    for image_id, image in images.items():
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / image_id)
        rows.append(
            {
                "eval_set": name,
                "image_id": image_id,
                "path": str(folder / image_id),
                "captions": [],
                "phash": dihedral_phashes(image).tolist(),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA), path)
    np.save(str(path)[: -len(".parquet")] + ".npy", np.zeros((len(rows), 8, 4), np.float16))


def test_planted_copies_dropped_distinct_close_pairs_reported_and_kept(tmp_path):
    """End to end on the pHash path: every planted kind of two images is a confirmed pair and its
    sample is dropped; the distinct images within the radius are candidates, listed unconfirmed in
    the matches and counted in the report, and kept."""
    rng = random.Random(7)
    originals = {f"orig{n}": render_aerial(400 + n) for n in range(2)}
    distinct = {f"near{a}": aerial_scene(a, 160) for a, _, _ in DISTINCT_CLOSE_PAIRS}
    dataset = {**originals, **distinct}
    tar = _write_tar(tmp_path / "pub.tar", {f"{uid}.png": image for uid, image in dataset.items()})
    pq.write_table(
        pa.table(
            {
                "uid": list(dataset),
                "source": ["laion2b"] * len(dataset),
                "tar": [tar] * len(dataset),
                "member": [f"{uid}.png" for uid in dataset],
                "phash": [phash_int(image) for image in dataset.values()],
            }
        ),
        tmp_path / "pub.parquet",
    )
    pq.write_table(pa.table({"uid": list(dataset)}), tmp_path / "scores.parquet")
    np.save(tmp_path / "pub.npy", np.zeros((len(dataset), 4), np.float16))
    evals = {}
    for uid, image in originals.items():
        evals.update({f"copies/{uid}_{name}.png": copy for name, copy in planted_copies(image, rng)})
    evals.update({f"near/{b}.png": aerial_scene(b, 160) for _, b, _ in DISTINCT_CLOSE_PAIRS})
    _write_eval_table(tmp_path / "bench.parquet", "bench", evals, tmp_path / "eval")

    summary = decontaminate(
        "pub11",
        tmp_path / "pub.parquet",
        tmp_path / "final.parquet",
        tmp_path / "final.stats.json",
        tmp_path / "final.drops.parquet",
        tmp_path / "pub.matches.parquet",
        [tmp_path / "bench.parquet"],
        embedding_parts=[(tmp_path / "scores.parquet", tmp_path / "pub.npy")],
        phash_parts=[],
        settings=settings("drop", DEFAULT_RADIUS, None),
    )
    matches = pq.read_table(tmp_path / "pub.matches.parquet").to_pylist()
    confirmed = {(m["uid"], m["image_id"]) for m in matches if m["confirmed"]}
    for image_id in (i for i in evals if i.startswith("copies/")):
        assert (image_id.split("/")[1].split("_")[0], image_id) in confirmed, image_id
    assert {uid for uid, _ in confirmed} == set(originals)
    assert all(m["confirmation"] >= CONFIRM_THRESHOLD for m in matches if m["confirmed"])
    near = {(m["uid"], m["image_id"]): m for m in matches if m["uid"] in distinct}
    for a, b, bits in DISTINCT_CLOSE_PAIRS:
        pair = near[(f"near{a}", f"near/{b}.png")]
        assert pair["method"] == "phash" and pair["score"] == bits and not pair["confirmed"]
        assert pair["confirmation"] < CONFIRM_THRESHOLD
    drops = pq.read_table(tmp_path / "final.drops.parquet").to_pylist()
    assert {d["uid"] for d in drops} == set(originals) and all(d["reason"] == REASON for d in drops)
    assert set(pq.read_table(tmp_path / "final.parquet").column("uid").to_pylist()) == set(distinct)
    assert summary["candidates"] == len(dataset) and summary["dropped"] == len(originals)
    rows = write_report(
        [tmp_path / "bench.parquet"],
        [tmp_path / "pub.matches.parquet"],
        tmp_path / "d.csv",
        tmp_path / "d.md",
        tmp_path / "d.png",
        {"bench": "folder"},
        replace(settings("drop"), action=Action(pub11="drop", rs3="report")),
    )
    total = rows[-1]
    assert total["pub11_phash"] == len(dataset) and total["pub11_matched"] == total["pub11_dropped"] == 2
    assert total["pub11_unconfirmed"] == len(distinct)


def test_hash_search_finds_every_pair_within_the_radius():
    rng = np.random.default_rng(0)
    index = rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)
    queries = index[:300].copy()
    flips = rng.integers(0, 14, 300)
    for i, n in enumerate(flips):
        for bit in rng.choice(64, n, replace=False):
            queries[i] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(2**63))
    for radius in (0, 4, 10, 12):
        q, i, d = hash_search(index, queries, radius)
        brute = {(a, b) for a in range(300) for b in np.nonzero(hamming(np.full(2000, queries[a]), index) <= radius)[0]}
        assert {(int(a), int(b)) for a, b in zip(q, i)} == brute


def test_embedding_search_above_the_flat_limit_finds_planted_copies():
    # Above FLAT_LIMIT eval vectors the index is an inverted file (approximate): planted copies at
    # cosine ~0.97 must still be found, and random vectors (cosine ~0 in 64 dimensions) must not match.
    rng = np.random.default_rng(1)
    evals = rng.standard_normal((FLAT_LIMIT + 4000, 64)).astype(np.float32)
    evals /= np.linalg.norm(evals, axis=1, keepdims=True)
    index = embedding_index(evals)
    assert type(index).__name__ == "IndexIVFScalarQuantizer"
    sources = rng.choice(len(evals), 300, replace=False)
    noise = rng.standard_normal((300, 64)).astype(np.float32)
    copies = evals[sources] + 0.25 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    others = rng.standard_normal((2000, 64)).astype(np.float32)
    queries = np.concatenate([copies, others])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    q, i, cosine = embedding_search(index, queries, 0.92)
    found = {(int(a), int(b)) for a, b in zip(q, i)}
    assert len(found & {(n, int(s)) for n, s in enumerate(sources)}) >= 0.98 * 300
    assert all(a < 300 for a, _ in found) and (cosine >= 0.92).all()


def _write_tar(path: Path, images: dict[str, Image.Image]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, image in images.items():
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            info = tarfile.TarInfo(name)
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    return str(path)


def _write_images(folder: Path, images: dict[str, Image.Image]) -> None:
    for rel, image in images.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / rel)


def test_readers_folder_karpathy_list_and_missing(tmp_path, caplog):
    _write_images(tmp_path / "aid", {"airport/a1.jpg": render_aerial(1), "farm/f1.png": render_aerial(2)})
    (tmp_path / "aid" / "notes.txt").write_text("not an image")
    folder = read_eval_set("aid", [str(tmp_path / "aid"), str(tmp_path / "nowhere")], "folder")
    assert [i.image_id for i in folder.images] == ["airport/a1.jpg", "farm/f1.png"]
    assert str(tmp_path / "nowhere") in folder.missing
    assert "matches nothing" in caplog.text

    _write_images(tmp_path / "rsicd" / "RSICD_images", {"00001.jpg": render_aerial(3)})
    (tmp_path / "rsicd" / "dataset_rsicd.json").write_text(
        json.dumps(
            {
                "images": [
                    {
                        "filename": "00001.jpg",
                        "split": "test",
                        "sentences": [{"raw": "many planes . "}, {"raw": "an airport"}],
                    },
                    {"filename": "00002.jpg", "split": "test", "sentences": []},
                ]
            }
        )
    )
    karpathy = read_eval_set(
        "rsicd", [str(tmp_path / "rsicd" / "*.json"), str(tmp_path / "rsicd" / "RSICD_images")], "karpathy_json"
    )
    assert [(i.image_id, i.captions) for i in karpathy.images] == [("00001.jpg", ("many planes .", "an airport"))]
    assert karpathy.missing == ["00002.jpg"]

    (tmp_path / "list.txt").write_text("# eval\naid/airport/a1.jpg\n\naid/gone.jpg\n")
    listed = read_eval_set("mine", [str(tmp_path / "list.txt")], "list")
    assert [i.image_id for i in listed.images] == ["aid/airport/a1.jpg"] and listed.missing == ["aid/gone.jpg"]
    assert read_eval_set("empty", [str(tmp_path / "none-*.json")], "karpathy_json").images == []
    with pytest.raises(ValueError, match="unknown format"):
        read_eval_set("x", [], "coco")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    return str(build_tiny_clip("rs5m-tiny-clip", tmp_path_factory.mktemp("clip") / "tiny.pt", seed=0))


def test_embedding_path_drop_and_report_with_the_tiny_clip(tmp_path, tiny_clip):
    """Eval features (8 variants), RS3 features and the matching with both methods; PUB11 `drop`
    writes eval_overlap drops with `<set>:<image id>`, RS3 `report` keeps its rows."""
    tiny = ("rs5m-tiny-clip", tiny_clip)
    clip = {"settings": settings(clip=tiny), "workers": 0}
    dataset = {f"img{n}.png": render_aerial(200 + n) for n in range(6)}
    _write_images(tmp_path / "ds", dataset)
    # Eval set: a rotated copy of img0 and img3 (RS3), plus two distinct images.
    _write_images(
        tmp_path / "eval" / "c",
        {
            "copy0.png": dataset["img0.png"].transpose(Image.Transpose.ROTATE_90),
            "copy3.png": dataset["img3.png"].transpose(Image.Transpose.FLIP_TOP_BOTTOM),
            "other1.png": render_aerial(900),
            "other2.png": render_aerial(901),
        },
    )
    eval_out = tmp_path / "eval_feat" / "bench.parquet"
    assert (
        eval_set_features(
            "bench", [str(tmp_path / "eval")], "folder", eval_out, tmp_path / "eval_feat" / "bench.npy", **clip
        )
        == 4
    )
    vectors = np.load(tmp_path / "eval_feat" / "bench.npy")
    assert vectors.shape[:2] == (4, 8) and np.allclose(
        np.linalg.norm(vectors.astype(np.float32), axis=-1), 1, atol=1e-2
    )

    # PUB11: three rows (their "stored" pHash and embeddings computed here); RS3: three image files.
    tar = _write_tar(tmp_path / "t.tar", {f"{n}.png": dataset[f"img{n}.png"] for n in range(3)})
    pub = pa.table(
        {
            "uid": ["p0", "p1", "p2"],
            "source": ["laion2b", "laion2b", "cc3m"],
            "tar": [tar] * 3,
            "member": ["0.png", "1.png", "2.png"],
            "phash": [phash_int(dataset[f"img{n}.png"]) for n in range(3)],
        }
    )
    pq.write_table(pub, tmp_path / "pub.parquet")
    rs3 = pa.table(
        {
            "uid": ["r3", "r4", "r5"],
            "dataset": ["fmow", "fmow", "millionaid"],
            "image_path": [str(tmp_path / "ds" / f"img{n}.png") for n in (3, 4, 5)],
        }
    )
    pq.write_table(rs3, tmp_path / "rs3.parquet")
    assert rs3_features(tmp_path / "rs3.parquet", tmp_path / "rs3f.parquet", tmp_path / "rs3f.npy", **clip) == 3
    pq.write_table(pub.select(["uid"]), tmp_path / "scores.parquet")
    pq.write_table(
        pa.table({"uid": ["p0", "p1", "p2"], "image_path": [str(tmp_path / "ds" / f"img{n}.png") for n in range(3)]}),
        tmp_path / "pubpaths.parquet",
    )
    rs3_features(tmp_path / "pubpaths.parquet", tmp_path / "pubf.parquet", tmp_path / "pub.npy", **clip)

    summary = decontaminate(
        "pub11",
        tmp_path / "pub.parquet",
        tmp_path / "pub_final.parquet",
        tmp_path / "pub_final.stats.json",
        tmp_path / "pub_final.drops.parquet",
        tmp_path / "pub.matches.parquet",
        [eval_out],
        embedding_parts=[(tmp_path / "scores.parquet", tmp_path / "pub.npy")],
        phash_parts=[],
        settings=settings("drop", DEFAULT_RADIUS, 0.99999, clip=tiny),
    )
    assert summary["dropped"] >= 1
    matches = pq.read_table(tmp_path / "pub.matches.parquet").to_pylist()
    assert {(m["uid"], m["method"], m["image_id"], m["variant"]) for m in matches if m["method"] == "phash"} == {
        ("p0", "phash", "c/copy0.png", "rot270")
    }
    # The rotated copy's un-rotated variant is the dataset image itself: cosine 1 up to rounding.
    assert any(m["uid"] == "p0" and m["method"] == "embedding" and m["score"] > 0.999 for m in matches)
    drops = pq.read_table(tmp_path / "pub_final.drops.parquet").to_pylist()
    assert {d["uid"]: (d["reason"], d["detail"]) for d in drops}["p0"] == (REASON, "bench:c/copy0.png")
    kept = pq.read_table(tmp_path / "pub_final.parquet").column("uid").to_pylist()
    assert "p0" not in kept and len(kept) + len(drops) == 3
    stats = read_stats([tmp_path / "pub_final.stats.json"])
    assert sum(s.rows_in for s in stats) == 3 and sum(s.dropped.get(REASON, 0) for s in stats) == len(drops)

    # The embedding matcher alone never drops: at cosine >= -1 every image has an embedding candidate,
    # only the copy the confirmation accepts (p0) leaves.
    loose = decontaminate(
        "pub11",
        tmp_path / "pub.parquet",
        tmp_path / "loose.parquet",
        tmp_path / "loose.stats.json",
        tmp_path / "loose.drops.parquet",
        tmp_path / "loose.matches.parquet",
        [eval_out],
        embedding_parts=[(tmp_path / "scores.parquet", tmp_path / "pub.npy")],
        phash_parts=[],
        settings=settings("drop", 0, -1.0, clip=tiny),
    )
    loose_matches = pq.read_table(tmp_path / "loose.matches.parquet").to_pylist()
    assert {m["uid"] for m in loose_matches if m["method"] == "embedding"} == {"p0", "p1", "p2"}
    assert {m["uid"] for m in loose_matches if m["confirmed"]} == {"p0"}
    assert [d["uid"] for d in pq.read_table(tmp_path / "loose.drops.parquet").to_pylist()] == ["p0"]
    assert loose["candidates"] == 3 and loose["dropped"] == 1

    decontaminate(
        "rs3",
        tmp_path / "rs3.parquet",
        tmp_path / "rs3_final.parquet",
        tmp_path / "rs3_final.stats.json",
        tmp_path / "rs3_final.drops.parquet",
        tmp_path / "rs3.matches.parquet",
        [eval_out],
        embedding_parts=[(tmp_path / "rs3f.parquet", tmp_path / "rs3f.npy")],
        phash_parts=[tmp_path / "rs3f.parquet"],
        settings=settings("report", DEFAULT_RADIUS, 0.99999, clip=tiny),
    )
    assert pq.read_table(tmp_path / "rs3_final.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "rs3_final.drops.parquet").num_rows == 0
    rs3_matches = pq.read_table(tmp_path / "rs3.matches.parquet").to_pylist()
    assert ("r3", "c/copy3.png") in {(m["uid"], m["image_id"]) for m in rs3_matches if m["method"] == "phash"}

    rows = write_report(
        [eval_out],
        [tmp_path / "pub.matches.parquet", tmp_path / "rs3.matches.parquet"],
        tmp_path / "d.csv",
        tmp_path / "d.md",
        tmp_path / "d.png",
        {"bench": "folder"},
        replace(settings("drop", DEFAULT_RADIUS, 0.99999, clip=tiny), action=Action(pub11="drop", rs3="report")),
    )
    bench = rows[0]
    assert bench["images_read"] == 4 and bench["pub11_phash"] == 1 and bench["rs3_phash"] == 1
    assert bench["pub11_dropped"] == summary["dropped"] and bench["rs3_dropped"] == 0
    assert "| bench | folder | 4 |" in (tmp_path / "d.md").read_text()
    with Image.open(tmp_path / "d.png") as png:
        assert png.size[0] > 200


@pytest.mark.workflow
def test_demo_drops_planted_copies_keeps_distinct_images_and_the_books_balance(demo_run):
    check_demo_decontamination(demo_run)


def check_demo_decontamination(run: Path) -> None:
    planted = json.loads((run / "resources/demo/eval/planted.json").read_text())
    pub11_planted = set(planted) & set(pq.read_table(run / "results/pub11/outliers.parquet").column("uid").to_pylist())
    rs3_planted = set(planted) - pub11_planted
    assert len(pub11_planted) >= 3 and rs3_planted
    matches = pq.read_table(run / "results/decontamination/pub11.matches.parquet").to_pylist()
    phash_hits = {(m["uid"], m["image_id"]) for m in matches if m["method"] == "phash"}
    found = sum((uid, image_id) in phash_hits for uid in pub11_planted for image_id in planted[uid])
    assert found == sum(len(planted[uid]) for uid in pub11_planted)  # every planted copy is found
    assert not [m for m in matches if "distinct" in m["image_id"] and m["method"] == "phash"]
    # PUB11 `drop`: planted uids leave final.parquet with one eval_overlap drop each.
    final = set(pq.read_table(run / "results/pub11/final.parquet").column("uid").to_pylist())
    drops = pq.read_table(run / "results/pub11/final.drops.parquet").to_pylist()
    assert pub11_planted.isdisjoint(final) and pub11_planted <= {d["uid"] for d in drops}
    assert all(d["reason"] == REASON and d["detail"].split(":", 1)[0].startswith("demo_") for d in drops)
    outliers_kept = pq.read_metadata(run / "results/pub11/outliers.parquet").num_rows
    assert len(final) + len(drops) == outliers_kept
    # RS3 `report`: matched, reported, kept.
    rs3_matches = {m["uid"] for m in pq.read_table(run / "results/decontamination/rs3.matches.parquet").to_pylist()}
    assert rs3_planted <= rs3_matches
    assert rs3_planted <= set(pq.read_table(run / "results/rs3/final.parquet").column("uid").to_pylist())
    # Report, funnel column, card, audit.
    report = {r["eval_set"]: r for r in __import__("csv").DictReader(open(run / "results/stats/decontamination.csv"))}
    assert set(report) == {"demo_scenes", "demo_captions", "demo_list", "total"}
    assert int(report["total"]["pub11_dropped"]) == len(drops) and int(report["total"]["rs3_dropped"]) == 0
    assert int(report["demo_scenes"]["images_read"]) >= 12
    funnel = json.loads((run / "results/stats/funnel.json").read_text())
    assert funnel["consistent"] and next(r for r in funnel["rows"] if r["source"] == "total")["eval_overlap"] == len(
        drops
    )
    assert "## Eval-set decontamination" in (run / "results/shards/README.md").read_text()
    assert json.loads((run / "results/stats/audit.json").read_text())["ok"] is True
    with Image.open(run / "results/stats/decontamination_pairs.png") as png:
        assert png.size[0] > 400
