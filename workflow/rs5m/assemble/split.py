"""Assembly stage, train/validation split: one decision per sample from its uid alone.

Reads the final PUB11 and RS3 tables, adds a `split` column ("train" or "val").
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from rs5m.columns import UID

TRAIN = "train"
VAL = "val"
SPLITS = (TRAIN, VAL)

# A domain tag keeps the split hash independent of the uid's own bits, which already pick the
# download part (rs5m.columns.uid_bucket): without it, validation would fall in a few parts.
_SPLIT_SALT = b"rs5m-split\x1f"
_HASH_RANGE = float(1 << 64)


def split_position(uid: str) -> float:
    """A uniform number in [0, 1) fixed by the uid alone."""
    digest = hashlib.blake2b(_SPLIT_SALT + uid.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_RANGE


def split_of(uid: str, val_fraction: float) -> str:
    """ "val" for a stable `val_fraction` of uids, "train" for the rest.

    The decision reads nothing but the uid, so adding or removing other samples (a rerun with
    more sources, a changed filter) never moves a sample between splits; and raising the
    fraction only moves samples from train to val, never back.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split.val_fraction must be in [0, 1), got {val_fraction}")
    return VAL if split_position(uid) < val_fraction else TRAIN


def assign_split(table: pa.Table, val_fraction: float) -> pa.Table:
    """The table with a `split` column added (replaced if present).

    Being per sample, the validation share is `val_fraction` within every source and every RS3
    dataset in expectation (binomial noise only), which is what "drawn evenly from each subset"
    asks without making a sample's split depend on the others.
    """
    splits = pa.array([split_of(uid, val_fraction) for uid in table.column(UID).to_pylist()], pa.string())
    if "split" in table.column_names:
        table = table.drop_columns(["split"])
    return table.append_column("split", splits)


def split_counts(table: pa.Table, group: str) -> dict[str, dict[str, int]]:
    """{group value: {"train": n, "val": n}} for a table with a `split` column."""
    counts: dict[str, dict[str, int]] = {}
    grouped = table.group_by([group, "split"]).aggregate([([], "count_all")])
    for row in grouped.to_pylist():
        counts.setdefault(row[group], {TRAIN: 0, VAL: 0})[row["split"]] = row["count_all"]
    return dict(sorted(counts.items()))


def select_split(table: pa.Table, split: str) -> pa.Table:
    return table.filter(pc.equal(table.column("split"), split))
