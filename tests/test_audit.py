import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from assembly_fakes import make_run
from schema_defaults import shard_settings

from rs5m.assemble.audit import audit, main, order_chain
from rs5m.assemble.manifest import PUB11, RS3
from rs5m.assemble.shards import write_subset_shards
from rs5m.ledger import StageStats


def _shards(run):
    for subset in (PUB11, RS3):
        write_subset_shards(
            subset,
            run / f"results/{subset}/final.parquet",
            run / "results/shards",
            run / f"results/shards/{subset}.manifest.json",
            shard_settings(split={"val_fraction": 0.2}, shards={"target_bytes": 30_000}),
            base_dir=run,
        )


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("good"))
    _shards(run)
    return run


@pytest.fixture
def run(good_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(good_run, copy)
    return copy


def _checks(result):
    return {v.split(":")[0] for v in result.violations}


def test_consistent_run_passes(good_run, capsys):
    result = audit(good_run)
    assert result.ok, result.violations
    final = pq.read_table(good_run / "results/pub11/final.parquet").num_rows + 30
    assert result.checked["shard_samples"] == final == result.checked["kept"]
    assert result.checked["ledger_sources"] == 4 and result.checked["drop_rows"] > 0
    assert main(["audit", str(good_run)]) == 0
    assert "audit passed" in capsys.readouterr().out
    from rs5m.cli import main as rs5m_main

    assert rs5m_main(["audit", str(good_run), "--no-verify-images"]) == 0


def test_broken_ledger_chain_named(run, capsys):
    path = run / "results/pub11/ledger/all.stats.json"
    stats = json.loads(path.read_text())
    for entry in stats:
        if entry["stage"] == "image_dedup" and entry["source"] == "cc3m":
            entry["rows_in"] += 1
            entry["kept"] += 1  # arithmetic still holds, the chain does not
    path.write_text(json.dumps(stats))
    result = audit(run)
    assert "ledger_chain" in _checks(result)
    assert any("cc3m: image_dedup.rows_in=25 != download.kept=24" in v for v in result.violations)
    assert main(["audit", str(run)]) == 1
    assert "ledger_chain" in capsys.readouterr().err


def test_bad_arithmetic_and_missing_drop_records(run):
    path = run / "results/pub11/ledger/all.stats.json"
    stats = json.loads(path.read_text())
    stats[0]["kept"] += 1
    path.write_text(json.dumps(stats))
    drops = pq.read_table(run / "results/pub11/ledger/all.drops.parquet")
    pq.write_table(drops.slice(1), run / "results/pub11/ledger/all.drops.parquet")
    checks = _checks(audit(run))
    assert {"ledger_arithmetic", "drop_records"} <= checks


def test_kept_uid_missing_from_shards_and_extra_uid(run):
    final = pq.read_table(run / "results/rs3/final.parquet").to_pylist()
    extra = dict(final[0], uid="ffffffffffffffff")
    pq.write_table(
        pa.Table.from_pylist(final[1:] + [extra], schema=pq.read_schema(run / "results/rs3/final.parquet")),
        run / "results/rs3/final.parquet",
    )
    result = audit(run)
    messages = "\n".join(result.violations)
    assert f"uid {final[0]['uid']} is in a shard but in no final table" in messages
    assert "uid ffffffffffffffff (fmow) kept but in no shard" in messages


def test_uid_both_dropped_and_kept(run):
    kept_uid = pq.read_table(run / "results/pub11/final.parquet").column("uid")[0].as_py()
    drops = pq.read_table(run / "results/pub11/ledger/all.drops.parquet").to_pylist()
    drops[-1]["uid"] = kept_uid
    pq.write_table(pa.Table.from_pylist(drops), run / "results/pub11/ledger/all.drops.parquet")
    assert any(f"uid {kept_uid} is both dropped and kept" in v for v in audit(run).violations)


def test_corrupt_truncated_and_stale_shards(run):
    shards = sorted((run / "results/shards/train").glob("pub11-*.tar"))
    data = bytearray(shards[0].read_bytes())
    start = data.find(b"\xff\xd8\xff")  # first JPEG: break its header, keep the tar intact
    data[start : start + 3] = b"XXX"
    shards[0].write_bytes(bytes(data))
    shards[1].write_bytes(shards[1].read_bytes()[:2000])
    (run / "results/shards/val/rs3-val-0042.tar").write_bytes(b"")
    checks = _checks(audit(run))
    assert {
        "shard_checksum",
        "member_unreadable",
        "shard_count",
        "shard_unlisted",
        "shard_uid",
        "funnel_vs_shards",
    } <= checks


def test_funnel_json_compared(run):
    (run / "results/stats").mkdir(parents=True, exist_ok=True)
    (run / "results/stats/funnel.json").write_text(json.dumps({"rows": [{"source": "wit", "remain": 99}]}))
    assert any(v.startswith("funnel_vs_shards: funnel.json wit") for v in audit(run).violations)


def test_missing_manifest(run):
    (run / "results/shards/rs3.manifest.json").unlink()
    checks = _checks(audit(run))
    assert "manifest" in checks and "shard_unlisted" in checks


def test_order_chain_uses_pub11_stage_order():
    # image_dedup dropped nothing: counts alone could not order it before outliers with rows_in 10
    chain = [
        StageStats("outliers", "s", 10, 8, {"x": 2}),
        StageStats("image_dedup", "s", 10, 10),
        StageStats("keyword_filter", "s", 30, 10, {"no_keyword_match": 20}),
    ]
    assert [e.stage for e in order_chain(chain, None)] == ["keyword_filter", "image_dedup", "outliers"]


def test_order_chain_inferred_with_pass_through_stage():
    chain = [
        StageStats("b", "s", 10, 10),
        StageStats("c", "s", 10, 7, {"x": 3}),
        StageStats("a", "s", 20, 10, {"y": 10}),
    ]
    assert [e.stage for e in order_chain(chain, None)] == ["a", "b", "c"]
    assert [e.stage for e in order_chain(chain, ["c", "b", "a"])] == ["c", "b", "a"]


def test_unknown_download_reason_named(run):
    """The download stage's reasons are a closed set (rs5m.reasons, the crawl guard's included)."""
    stats_path = run / "results/pub11/ledger/all.stats.json"
    drops_path = next(
        p
        for p in run.rglob("*.drops.parquet")
        if "download" in pq.read_table(p, columns=["stage"]).column("stage").to_pylist()
    )
    drops = pq.read_table(drops_path)
    stages = drops.column("stage").to_pylist()
    index = stages.index("download")
    reason = drops.column("reason").to_pylist()
    renamed, reason[index] = reason[index], "fetch_gone_wrong"
    drops = drops.set_column(drops.schema.get_field_index("reason"), "reason", pa.array(reason, pa.string()))
    pq.write_table(drops, drops_path)
    stats = json.loads(stats_path.read_text())
    source = drops.column("source")[index].as_py()
    for entry in stats:
        if entry["stage"] == "download" and entry["source"] == source:
            entry["dropped"][renamed] -= 1
            entry["dropped"] = {k: v for k, v in entry["dropped"].items() if v}
            entry["dropped"]["fetch_gone_wrong"] = 1
    stats_path.write_text(json.dumps(stats))
    result = audit(run)
    assert _checks(result) == {"drop_reason"}, result.violations


def test_only_the_declared_ledger_files_are_read(run):
    """A stale ledger file of an older run (changed `parts`, removed source) is not a violation."""
    declared = sorted(str(p.relative_to(run)) for p in run.glob("results/**/*.stats.json")) + sorted(
        str(p.relative_to(run)) for p in run.glob("results/**/*.drops.parquet")
    )
    stale = run / "results/pub11/download/0007.stats.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps([{"stage": "download", "source": "laion2b", "rows_in": 5, "kept": 9, "dropped": {}}]))
    assert "ledger_arithmetic" in _checks(audit(run))  # the CLI, given no list, still looks under results/
    result = audit(run, ledger=declared)
    assert result.ok, result.violations
    assert result.checked["stats_files"] == len([p for p in declared if p.endswith(".stats.json")])


def test_each_shard_is_streamed_once(good_run, monkeypatch):
    """Shards are hashed while their samples are read: each byte read once, never a whole shard."""
    import builtins
    from pathlib import Path

    import rs5m.assemble.audit as audit_module

    reads: dict[str, list[int]] = {}

    class Counting:
        def __init__(self, raw, name):
            self.raw, self.name = raw, name

        def __getattr__(self, attr):
            return getattr(self.raw, attr)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.raw.close()

        def _count(self, n):
            reads.setdefault(self.name, []).append(n)
            return n

        def readinto(self, buffer):
            return self._count(self.raw.readinto(buffer) or 0)

        def read(self, size=-1):
            data = self.raw.read(size)
            self._count(len(data))
            return data

    def counting_open(path, *args, **kwargs):
        return Counting(builtins.open(path, *args, **kwargs), str(path))

    def no_read_bytes(self):
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(audit_module, "open", counting_open, raising=False)
    monkeypatch.setattr(Path, "read_bytes", no_read_bytes)
    result = audit(good_run)
    assert result.ok, result.violations
    tars = sorted(good_run.glob("results/shards/*/*.tar"))
    assert tars and sorted(reads) == sorted(map(str, tars))
    for tar in tars:
        assert sum(reads[str(tar)]) == tar.stat().st_size  # once, to the end
        if tar.stat().st_size > 1 << 16:  # a tar of one record is read in one piece
            assert max(reads[str(tar)]) < tar.stat().st_size  # in pieces, not whole
