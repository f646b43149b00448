"""pHash near-duplicate groups (chains, ties, radius 0, brute-force agreement) and the dedup stage."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from schema_defaults import schema_defaults

from rs5m.columns import make_uid
from rs5m.confirm import MAX_COLOR_DIFFERENCE, MAX_LAYOUT_DIFFERENCE
from rs5m.demo.web import render_aerial
from rs5m.pub11.image_dedup import (
    choose_bands,
    dedup_images,
    kept_in_groups,
    near_duplicate_groups,
    near_duplicate_pairs,
)
from rs5m.pub11.settings import DedupSettings
from rs5m.pub11.urls import pick_kept

# The search with bands chosen by its cost model (config dedup.bands: 0), one thread, no memory cap.
AUTO = {"bands": 0, "threads": 1, "memory_limit": None}


def _flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << int(bit)
    return value


def _signed(values) -> np.ndarray:
    return np.array([v & (2**64 - 1) for v in values], dtype=np.uint64).view(np.int64)


def _brute_force_groups(hashes: np.ndarray, radius: int) -> np.ndarray:
    unsigned = hashes.view(np.uint64)
    parent = list(range(len(hashes)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        close = np.flatnonzero(np.bitwise_count(unsigned[i] ^ unsigned[i + 1 :]) <= radius) + i + 1
        for j in close:
            parent[find(int(j))] = find(i)
    return np.array([find(i) for i in range(len(hashes))])


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_chain_is_one_group_even_when_ends_are_far():
    base = 0x0123_4567_89AB_CDEF
    chain = [base, _flip(base, 1, 2, 3), _flip(base, 1, 2, 3, 10, 11, 12), _flip(base, 1, 2, 3, 10, 11, 12, 20, 21, 22)]
    far = _flip(base, *range(30, 50))
    labels = near_duplicate_groups(_signed(chain + [far]), radius=3, **AUTO)
    assert len(set(labels[:4].tolist())) == 1 and labels[4] != labels[0]
    # with radius 2 no link of the chain holds
    assert len(set(near_duplicate_groups(_signed(chain + [far]), radius=2, **AUTO).tolist())) == 5


def test_radius_boundary_and_top_bit():
    base = -(2**63) + 12345  # top bit set: the sign of the stored int64
    within = _flip(base, 63, 0, 5, 9)  # distance 4, through the sign bit
    beyond = _flip(base, 20, 21, 22, 23, 24)  # distance 5 from base, 9 from `within`
    hashes = _signed([base, within, beyond])
    labels = near_duplicate_groups(hashes, radius=4, **AUTO)
    assert labels[0] == labels[1] and labels[2] != labels[0]
    assert near_duplicate_pairs(hashes, radius=5, **AUTO).tolist() == [[0, 1], [0, 2]]
    assert near_duplicate_pairs(hashes, radius=3, **AUTO).tolist() == []


def test_radius_zero_groups_identical_hashes_only():
    hashes = _signed([7, 7, 6, 7, 2**40])
    labels = near_duplicate_groups(hashes, radius=0, **AUTO)
    assert labels[0] == labels[1] == labels[3]
    assert len({labels[0], labels[2], labels[4]}) == 3


@pytest.mark.parametrize("radius", [1, 3, 4, 7])
def test_agrees_with_brute_force(radius):
    rng = np.random.default_rng(radius)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.int64) * rng.choice([-1, 1], 3000)
    sources = rng.choice(len(hashes), 300)
    near = [
        _flip(int(hashes[s]) & (2**64 - 1), *rng.choice(64, int(rng.integers(1, radius + 2)), replace=False))
        for s in sources
    ]
    hashes = np.concatenate([hashes, _signed(near), hashes[:20]])  # exact repeats too
    assert _same_partition(near_duplicate_groups(hashes, radius, **AUTO), _brute_force_groups(hashes, radius))
    for bands in {radius + 1, min(radius, 3)}:  # the pigeonhole bound with exact and with fuzzy bands
        assert _same_partition(
            near_duplicate_groups(hashes, radius, bands=bands, threads=1, memory_limit=None),
            _brute_force_groups(hashes, radius),
        )


def test_choose_bands_uses_more_bits_per_band_for_more_hashes():
    assert choose_bands(1_000, 4) == 5  # few hashes: exact match on 5 bands of ~13 bits
    assert choose_bands(1_000_000, 4) < 5  # many: wider bands, 1-bit probes
    assert choose_bands(10, 0) == 1


def test_kept_follows_the_priority_rule_in_every_group():
    labels = np.array([0, 0, 0, 1, 1, 2])
    sources = ["laioncoco", "cc3m", "laion400m", "laioncoco", "sbu", "vg"]
    uids = [make_uid(s, f"x{i}") for i, s in enumerate(sources)]
    winners = kept_in_groups(labels, sources, uids)
    assert winners.tolist() == [2, 2, 2, 4, 4, 5]
    # ties (same source) are broken the same way as URL dedup
    tie_uids = [make_uid("laion2b", f"t{i}") for i in range(6)]
    winners = kept_in_groups(np.zeros(6, np.int64), ["laion2b"] * 6, tie_uids)
    assert tie_uids[winners[0]] == pick_kept([("laion2b", u) for u in tie_uids])


def _jpeg_bytes(image, quality=95) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _jpeg(image, quality):
    from PIL import Image

    return Image.open(io.BytesIO(_jpeg_bytes(image, quality)))


def test_dedup_images_stage(tmp_path):
    # (source, pHash, part, picture): the pictures are what confirmation compares; a candidate pair
    # joins a group only when its two pictures agree.
    scene = {name: render_aerial(n) for name, n in (("a", 1), ("b", 2), ("c", 3), ("d", 4))}
    rows = [
        # part 0000
        ("laioncoco", 0x1111_0000_FFFF_0000, "0000", scene["a"]),
        ("coyo700m", 0x1111_0000_FFFF_0001, "0000", _jpeg(scene["a"], 70)),  # near-dup of the first: kept (preferred)
        ("cc3m", 0x7777_7777_0000_0000, "0000", scene["b"]),
        # part 0001
        ("sbu", 0x1111_0000_FFFF_0003, "0001", _jpeg(scene["a"].resize((200, 200)), 85)),  # same group
        ("wit", 0x7777_7777_0000_0000, "0001", scene["b"]),  # exact copy of the cc3m image
        ("vg", 0x0F0F_0F0F_0F0F_0F0F, "0001", scene["c"]),
        # a chance collision: 1 bit from the vg hash, another picture: a candidate, not confirmed, kept
        ("cc12m", 0x0F0F_0F0F_0F0F_0F0E, "0001", scene["d"]),
    ]
    uids = [make_uid(s, f"http://x/{i}.jpg") for i, (s, _, _, _) in enumerate(rows)]
    images, urls = [], []
    for part in ("0000", "0001"):
        members = [i for i, row in enumerate(rows) if row[2] == part]
        tar = tmp_path / f"download/{part}/00000.tar"
        tar.parent.mkdir(parents=True)
        with tarfile.open(tar, "w") as archive:
            for k, i in enumerate(members):
                data = _jpeg_bytes(rows[i][3])
                info = tarfile.TarInfo(f"{k:09d}.jpg")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        table = pa.table(
            {
                "uid": [uids[i] for i in members],
                "source": [rows[i][0] for i in members],
                "tar": [str(tar)] * len(members),
                "member": [f"{k:09d}.jpg" for k in range(len(members))],
                "width": pa.array([256] * len(members), pa.int32()),
                "height": pa.array([256] * len(members), pa.int32()),
                "phash": pa.array([rows[i][1] for i in members], pa.int64()),
            }
        )
        images.append(str(tmp_path / f"images/{part}.parquet"))
        (tmp_path / "images").mkdir(exist_ok=True)
        pq.write_table(table, images[-1])
        url_table = pa.table(
            {
                "uid": [uids[i] for i in members],
                "source": [rows[i][0] for i in members],
                "url": [f"http://x/{i}.jpg" for i in members],
                "caption": [f"caption {i}" for i in members],
                "captions": [[f"caption {i}"] for i in members],
                "matched_keywords": [["aerial"]] * len(members),
                "width": pa.array([None] * len(members), pa.int64()),
                "height": pa.array([None] * len(members), pa.int64()),
                "native": pa.array([None] * len(members), pa.string()),
            }
        )
        urls.append(str(tmp_path / f"urldedup/{part}.parquet"))
        (tmp_path / "urldedup").mkdir(exist_ok=True)
        pq.write_table(url_table, urls[-1])
    kept_path = tmp_path / "dedup/kept.parquet"
    dedup_images(
        images,
        urls,
        str(kept_path),
        str(tmp_path / "dedup/kept.stats.json"),
        str(tmp_path / "dedup/kept.drops.parquet"),
        str(tmp_path / "dedup/pairs.parquet"),
        replace(DedupSettings.from_config(schema_defaults()), phash_radius=4, bands=0),
        threads=1,
        memory_limit=None,
    )

    kept = {row["uid"]: row for row in pq.read_table(kept_path).to_pylist()}
    winner_of_copy = pick_kept([("cc3m", uids[2]), ("wit", uids[4])])
    assert set(kept) == {uids[1], winner_of_copy, uids[5], uids[6]}
    assert kept[uids[1]]["part"] == "0000" and kept[uids[1]]["url"] == "http://x/1.jpg"
    assert kept[uids[5]]["part"] == "0001" and kept[uids[5]]["caption"] == "caption 5"
    assert kept[uids[5]]["member"] == "000000002.jpg"
    for name in ("uid", "source", "url", "caption", "matched_keywords", "part", "tar", "member", "width", "height"):
        assert name in pq.read_schema(kept_path).names
    drops = {row["uid"]: row for row in pq.read_table(tmp_path / "dedup/kept.drops.parquet").to_pylist()}
    assert {u: d["detail"] for u, d in drops.items()} == {
        uids[0]: uids[1],
        uids[3]: uids[1],
        (uids[4] if winner_of_copy == uids[2] else uids[2]): winner_of_copy,
    }
    assert {d["reason"] for d in drops.values()} == {"duplicate_image"}
    stats = {e["source"]: e for e in json.loads((tmp_path / "dedup/kept.stats.json").read_text())}
    assert stats["laioncoco"]["dropped"] == {"duplicate_image": 1} and stats["coyo700m"]["kept"] == 1
    assert sum(e["rows_in"] for e in stats.values()) == 7
    # every candidate pair is listed with its confirmation; only the chance collision fails it
    pairs = pq.read_table(tmp_path / "dedup/pairs.parquet").to_pylist()
    assert len(pairs) == 5  # the three "a" hashes pairwise, wit with cc3m (equal hashes), vg with cc12m
    unconfirmed = [(p["uid"], p["other_uid"]) for p in pairs if not p["confirmed"]]
    assert [set(u) for u in unconfirmed] == [{uids[5], uids[6]}]
    threshold = schema_defaults()["dedup"]["confirm"]["threshold"]
    assert all(
        p["confirmation"] >= threshold
        and p["color_difference"] <= MAX_COLOR_DIFFERENCE
        and p["layout_difference"] <= MAX_LAYOUT_DIFFERENCE
        for p in pairs
        if p["confirmed"]
    )
