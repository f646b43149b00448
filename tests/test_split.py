import pyarrow as pa
import pytest

from rs5m.assemble.split import TRAIN, VAL, assign_split, split_counts, split_of
from rs5m.columns import make_uid


def _uids(source, n, start=0):
    return [make_uid(source, f"http://x/{source}/{i}") for i in range(start, start + n)]


def test_fraction_holds_per_source():
    uids = {source: _uids(source, 4000) for source in ("laion2b", "cc3m", "fmow")}
    table = pa.table({"uid": sum(uids.values(), []), "source": sum(([s] * 4000 for s in uids), [])})
    counts = split_counts(assign_split(table, 0.05), "source")
    for source, per_split in counts.items():
        share = per_split[VAL] / (per_split[VAL] + per_split[TRAIN])
        assert 0.04 < share < 0.06, (source, share)


def test_adding_and_removing_samples_never_moves_one():
    base = _uids("laion2b", 2000)
    before = dict(zip(base, assign_split(pa.table({"uid": base}), 0.05).column("split").to_pylist()))
    grown = _uids("laion2b", 3000, start=2000) + base[500:]  # 500 removed, 3000 added, order changed
    after = dict(zip(grown, assign_split(pa.table({"uid": grown}), 0.05).column("split").to_pylist()))
    assert all(after[uid] == before[uid] for uid in base[500:])
    assert VAL in before.values() and TRAIN in before.values()


def test_raising_fraction_only_moves_train_to_val():
    uids = _uids("cc12m", 3000)
    for uid in uids:
        if split_of(uid, 0.05) == VAL:
            assert split_of(uid, 0.10) == VAL
    assert sum(split_of(u, 0.10) == VAL for u in uids) > sum(split_of(u, 0.05) == VAL for u in uids)


def test_split_is_independent_of_download_part_bits():
    # uids sharing their leading bits (the part bucket) must still be split at ~5 %
    uids = [u for u in _uids("wit", 40000) if u[0] == "a"]
    share = sum(split_of(u, 0.05) == VAL for u in uids) / len(uids)
    assert 0.03 < share < 0.07


def test_bad_fraction_rejected():
    with pytest.raises(ValueError, match="val_fraction"):
        split_of("0123456789abcdef", 1.0)
