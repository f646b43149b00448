import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from assembly_fakes import CC3M_LABELS, make_run
from PIL import Image
from schema_defaults import pub11_metacaption_args, shard_settings

from rs5m.assemble.manifest import PUB11, RS3, Manifest
from rs5m.assemble.shards import Sample, ShardSetWriter, sample_members, write_subset_shards
from rs5m.assemble.split import split_of
from rs5m.pub11.pub11_metacaption import pub11_metacaptions
from rs5m.tar import HashingFileWriter, iter_shard_samples, read_tar_members


def _write(run, subset, out="results/shards", pub11_meta=None, pub11_caption="keep", **shards):
    """Shards of `subset` with val_fraction 0.2, 20 kB tars and `rs5m` names unless `shards` says."""
    settings = shard_settings(
        split={"val_fraction": 0.2},
        shards={"target_bytes": 20_000, "member_names": "rs5m", **shards},
        metacaption={"pub11_caption": pub11_caption},
    )
    return write_subset_shards(
        subset,
        run / f"results/{subset}/final.parquet",
        run / out,
        run / out / f"{subset}.manifest.json",
        settings,
        base_dir=run,
        pub11_meta=pub11_meta,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def _tar_images(run):
    images = {}
    for tar in sorted((run / "results/pub11/download").glob("*/*.tar")):
        with tarfile.open(tar) as archive:
            for info in archive:
                images[(str(tar.relative_to(run)), info.name)] = archive.extractfile(info).read()
    return images


def test_pub11_round_trip(run):
    manifest = _write(run, PUB11)
    final = {r["uid"]: r for r in pq.read_table(run / "results/pub11/final.parquet").to_pylist()}
    images = _tar_images(run)
    seen = {}
    assert len(manifest.shards) > 2  # target 20 kB forces several shards
    for shard in manifest.shards:
        path = run / "results/shards" / shard.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard.sha256
        assert path.stat().st_size == shard.bytes
        keys = []
        for key, members in iter_shard_samples(path):
            assert set(members) == {"img_name", "img_content", "caption", "json"}
            row = final[key]
            assert members["img_content"] == images[(row["tar"], row["member"])]
            assert members["caption"].decode() == row["caption"]
            meta = json.loads(members["json"])
            assert meta["uid"] == key and meta["url"] == row["url"] and meta["source"] == row["source"]
            assert meta["matched_keywords"] == row["matched_keywords"] and meta["clip_score"] == row["clip_score"]
            assert members["img_name"].decode() == f"{row['source']}_{key}.jpg"
            assert meta["split"] == shard.split == split_of(key, 0.2)
            Image.open(__import__("io").BytesIO(members["img_content"])).load()
            keys.append(key)
            seen[key] = seen.get(key, 0) + 1
        assert shard.samples == len(keys) and shard.first_key == keys[0] and shard.last_key == keys[-1]
    assert seen == {uid: 1 for uid in final}
    names = [s.path for s in manifest.shards]
    assert "train/pub11-train-0000.tar" in names and "val/pub11-val-0000.tar" in names
    assert sum(c["train"] + c["val"] for c in manifest.counts.values()) == len(final)
    assert Manifest.read(run / "results/shards/pub11.manifest.json") == manifest


def test_rs3_round_trip_and_standard_names(run):
    manifest = _write(run, RS3, out="std", member_names="standard")
    final = {r["uid"]: r for r in pq.read_table(run / "results/rs3/final.parquet").to_pylist()}
    count = 0
    for shard in manifest.shards:
        previous = ""
        for key, members in iter_shard_samples(run / "std" / shard.path):
            assert set(members) == {"jpg", "txt", "json"}
            row = final[key]
            assert members["jpg"] == (run / row["image_path"]).read_bytes()
            assert members["txt"].decode() == row["caption"]
            meta = json.loads(members["json"])
            assert meta["img_name"] == row["img_name"] and meta["labels"] == "|".join(row["labels"] or [])
            assert meta["geo"] == (row["geo"] or "") and "clip_score" not in meta and "url" not in meta
            assert "image_path" not in meta  # machine-local paths would break byte-identity
            assert key > previous  # uid order
            previous = key
            count += 1
    assert count == len(final)
    assert manifest.counts["ben"]["train"] + manifest.counts["ben"]["val"] == 10


def test_reruns_byte_identical_and_stale_shards_removed(run):
    first = _write(run, PUB11, out="a")
    # a leftover from an interrupted run with more shards must not survive
    (run / "a/train/pub11-train-0099.tar").write_bytes(b"junk")
    (run / "a/train/pub11-train-0001.tar.tmp").write_bytes(b"junk")
    second = _write(run, PUB11, out="a")
    third = _write(run, PUB11, out="b")
    assert first == second == third
    for shard in first.shards:
        assert (run / "a" / shard.path).read_bytes() == (run / "b" / shard.path).read_bytes()
    assert sorted(p.name for p in (run / "a/train").iterdir()) == sorted(
        Path(s.path).name for s in first.shards if s.split == "train"
    )


def test_tar_headers_fixed_and_safe(run):
    manifest = _write(run, RS3, out="hdr")
    with tarfile.open(run / "hdr" / manifest.shards[0].path) as archive:
        members = archive.getmembers()
    assert members and all(
        m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.mode == 0o444 for m in members
    )
    assert all("/" not in m.name and m.name.count(".") == 1 for m in members)
    # members of one sample are adjacent
    keys = [m.name.split(".")[0] for m in members]
    assert keys == sorted(keys)


def test_missing_download_member_is_an_error(run, tmp_path):
    table = pq.read_table(run / "results/pub11/final.parquet").to_pylist()
    table[0]["member"] = "missing.jpg"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(table), tmp_path / "final.parquet")
    with pytest.raises(FileNotFoundError, match="missing"):
        write_subset_shards(
            PUB11,
            tmp_path / "final.parquet",
            tmp_path / "s",
            tmp_path / "s/m.json",
            shard_settings(split={"val_fraction": 0.05}, shards={"target_bytes": 10_000}),
            base_dir=run,
        )


def _tarfile_shard(path, members):
    """The shard tarfile itself writes for these members, with the fixed metadata."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o444, "", ""
            archive.addfile(info, io.BytesIO(data))


def test_hand_built_shard_equals_tarfile_output(tmp_path):
    samples = [
        Sample(
            f"k{n:03d}",
            f"laion_k{n}.png",
            bytes(range(256)) * n + b"x" * (n * 37 % 512),
            f"caption {n} é",
            {"uid": f"k{n:03d}", "score": n / 3},
        )
        for n in range(1, 6)
    ]
    writer = ShardSetWriter(tmp_path / "hand", "pub11", "train", 1 << 20, "rs5m", None)
    for sample in samples:
        writer.add(sample)
    [info] = writer.close()
    _tarfile_shard(tmp_path / "lib.tar", [m for s in samples for m in sample_members(s, "rs5m")])
    hand = (tmp_path / "hand" / info.path).read_bytes()
    assert hand == (tmp_path / "lib.tar").read_bytes()
    assert info.sha256 == hashlib.sha256(hand).hexdigest() and info.bytes == len(hand) and info.samples == 5


def test_download_scan_matches_tarfile_and_falls_back(tmp_path):
    plain = [(f"{n:09d}.jpg", bytes([n]) * (n * 300)) for n in range(1, 8)]
    _tarfile_shard(tmp_path / "plain.tar", plain)
    wanted = {plain[1][0], plain[5][0]}
    assert {k: bytes(v) for k, v in read_tar_members(tmp_path / "plain.tar", wanted).items()} == {
        name: data for name, data in plain if name in wanted
    }
    # A name over 100 bytes needs a GNU/pax header the scanner does not parse: tarfile reads it.
    long_name = "d" * 120 + ".jpg"
    with tarfile.open(tmp_path / "long.tar", "w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(long_name)
        info.size = 5
        archive.addfile(info, io.BytesIO(b"12345"))
    assert read_tar_members(tmp_path / "long.tar", {long_name}) == {long_name: b"12345"}
    data = (tmp_path / "plain.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: 512 * 3])  # second member's data cut short
    with pytest.raises(tarfile.ReadError, match="truncated"):
        read_tar_members(tmp_path / "cut.tar", {plain[1][0]})
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="missing"):
        read_tar_members(tmp_path / "empty.tar", {plain[0][0]})


def test_pub11_meta_captions_in_json_and_prepended_caption(run):
    meta = run / "results/pub11/metacaption.parquet"
    pub11_metacaptions(
        run / "results/pub11/final.parquet",
        sorted(run.glob("results/pub11/urldedup/*.parquet")),
        meta,
        **pub11_metacaption_args(cc3m_labels=run / CC3M_LABELS),
    )
    by_uid = {r["uid"]: r for r in pq.read_table(meta).to_pylist()}
    final = {r["uid"]: r for r in pq.read_table(run / "results/pub11/final.parquet").to_pylist()}
    manifest = _write(run, PUB11, out="meta", pub11_meta=meta, pub11_caption="prepend")
    seen = set()
    for shard in manifest.shards:
        for key, members in iter_shard_samples(run / "meta" / shard.path):
            info, caption = json.loads(members["json"]), members["caption"].decode()
            extra = by_uid.get(key)
            if extra and extra["meta_caption"]:
                assert info["meta_caption"] == extra["meta_caption"] and info["labels"] == "|".join(extra["labels"])
                assert info["geo"] == extra["geo"]
                assert caption == f"{extra['meta_caption']} {final[key]['caption']}"
                seen.add(info["source"])
            else:
                assert info["meta_caption"] == "" and caption == final[key]["caption"]
    assert seen == {"cc3m", "yfcc15m"}


def _json_types(value):
    return [type(item).__name__ for item in value] if isinstance(value, list) else type(value).__name__


def test_json_member_has_one_schema_per_subset(run):
    """Every sample of a subset has the same keys with the same JSON types (no null-vs-string, no
    empty list), the schema `PROVENANCE_FIELDS` declares."""
    from rs5m.assemble.manifest import PROVENANCE_FIELDS

    kinds = {"string": "str", "int64": "int", "float64": "float"}
    for subset in (PUB11, RS3):
        manifest = _write(run, subset, out=f"schema-{subset}")
        seen = 0
        for shard in manifest.shards:
            for _, members in iter_shard_samples(run / f"schema-{subset}" / shard.path):
                meta = json.loads(members["json"])
                assert list(meta) == sorted(PROVENANCE_FIELDS[subset])
                for name, kind in PROVENANCE_FIELDS[subset].items():
                    if kind == "list<string>":
                        assert meta[name] and all(isinstance(item, str) for item in meta[name])
                    else:
                        assert type(meta[name]).__name__ == kinds[kind], (name, meta[name])
                seen += 1
        assert seen == len(pq.read_table(run / f"results/{subset}/final.parquet"))


def test_target_bytes_counts_the_whole_tar(run):
    manifest = _write(run, PUB11, out="size", target_bytes=30_000)
    sizes = [shard.bytes for shard in manifest.shards]
    assert len(sizes) > 2 and all(size <= 30_000 for size in sizes)
    assert all((run / "size" / shard.path).stat().st_size == shard.bytes for shard in manifest.shards)


def test_fixed_shard_count(run):
    """shards.count: exactly that many tars per split, names 0000..count-1, empty ones included,
    every sample once, in the size-based writer's order, of about equal size."""
    final = pq.read_table(run / "results/pub11/final.parquet").to_pylist()
    by_size = _write(run, PUB11, out="bysize", target_bytes=10**9)
    manifest = _write(run, PUB11, out="count", count=6)
    assert manifest.count == 6 and Manifest.read(run / "count/pub11.manifest.json") == manifest
    order = {"train": [], "val": []}
    for split in ("train", "val"):
        shards = [s for s in manifest.shards if s.split == split]
        assert [s.path for s in shards] == [f"{split}/pub11-{split}-{n:04d}.tar" for n in range(6)]
        for shard in shards:
            path = run / "count" / shard.path
            assert path.stat().st_size == shard.bytes and hashlib.sha256(path.read_bytes()).hexdigest() == shard.sha256
            keys = [key for key, _ in iter_shard_samples(path)]
            assert len(keys) == shard.samples
            order[split] += keys
        full = [s for s in shards if s.samples]
        assert max(s.bytes for s in full) < 2.5 * min(s.bytes for s in full)
        [single] = [s for s in by_size.shards if s.split == split]
        assert order[split] == [key for key, _ in iter_shard_samples(run / "bysize" / single.path)]
    assert sorted(order["train"] + order["val"]) == sorted(r["uid"] for r in final)
    # More shards than samples: the missing ones are empty tars, still readable.
    many = _write(run, RS3, out="many", count=40)
    assert len(many.shards) == 80 and any(s.samples == 0 for s in many.shards)
    empty = next(s for s in many.shards if s.samples == 0)
    assert (run / "many" / empty.path).stat().st_size == 10240 and list(
        iter_shard_samples(run / "many" / empty.path)
    ) == []


def test_shard_indices_balance_bytes():
    from rs5m.assemble.shards import shard_indices

    assert shard_indices([10] * 8, 4) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert shard_indices([100, 1, 1, 1, 1], 2) == [0, 1, 1, 1, 1]
    assert shard_indices([5, 5], 4) == [0, 2]
    assert shard_indices([], 3) == []


@pytest.mark.parametrize(
    "subset,options", [(PUB11, {"target_bytes": 20_000}), (PUB11, {"count": 5}), (RS3, {"target_bytes": 20_000})]
)
def test_shard_groups_write_the_single_job_bytes(run, subset, options):
    """shards.jobs: each group writes its own range of shards; merged, the manifest and every tar
    equal what one job writes, and stale tars of an earlier run are removed by the merge."""
    from rs5m.assemble.shards import merge_manifests

    tag = f"{subset}-{options.get('count', 'size')}"
    single = _write(run, subset, out=f"one-{tag}", **options)
    out = run / f"groups-{tag}"
    (out / "train").mkdir(parents=True)
    (out / f"train/{subset}-train-0999.tar").write_bytes(b"stale")
    parts = []
    for group in range(3):
        parts.append(out / f"part-{group}.json")
        write_subset_shards(
            subset,
            run / f"results/{subset}/final.parquet",
            out,
            parts[-1],
            shard_settings(
                split={"val_fraction": 0.2}, shards={"member_names": "rs5m", "target_bytes": 20_000, **options}
            ),
            base_dir=run,
            group=group,
            groups=3,
        )
    assert sum(bool(Manifest.read(part).shards) for part in parts) >= 2
    merged = merge_manifests(parts, out / f"{subset}.manifest.json", out)
    assert merged == single and len(single.shards) >= 3
    for shard in single.shards:
        assert (out / shard.path).read_bytes() == (run / f"one-{tag}" / shard.path).read_bytes()
    assert not (out / f"train/{subset}-train-0999.tar").exists()


def test_hashing_writer_bytes_and_digest_across_write_back_ranges(tmp_path, monkeypatch):
    # Small write-back ranges, so that sync_file_range runs many times within one file.
    monkeypatch.setattr(HashingFileWriter, "_WRITE_BACK_BYTES", 3 << 20)
    pieces = [bytes([n % 251]) * (n * 7919 % 400_000 + 1) for n in range(120)]
    writer = HashingFileWriter(tmp_path / "out.bin")
    for n in range(0, len(pieces), 3):
        writer.write(*pieces[n : n + 3])
    digest = writer.close()
    data = (tmp_path / "out.bin").read_bytes()
    assert data == b"".join(pieces)
    assert digest == hashlib.sha256(data).hexdigest()
