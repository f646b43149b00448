"""The ledger: per-job counts and per-row drop records that every filtering stage writes.

Reads and writes `<output>.stats.json` and `<output>.drops.parquet` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

DROP_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


class LedgerError(ValueError):
    """Counts that do not add up: some rows would be lost without a terminal state."""


@dataclass
class StageStats:
    """What one job did to the rows of one source: rows in = kept + every dropped reason."""

    stage: str
    source: str
    rows_in: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def check(self) -> None:
        if self.rows_in != self.kept + self.dropped_total:
            raise LedgerError(
                f"{self.stage}/{self.source}: rows_in={self.rows_in} but kept={self.kept} + "
                f"dropped={self.dropped_total} {self.dropped}"
            )

    def merged(self, other: "StageStats") -> "StageStats":
        if (self.stage, self.source) != (other.stage, other.source):
            raise ValueError(f"cannot merge {self.stage}/{self.source} with {other.stage}/{other.source}")
        dropped = Counter(self.dropped)
        dropped.update(other.dropped)
        return StageStats(self.stage, self.source, self.rows_in + other.rows_in, self.kept + other.kept, dict(dropped))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["dropped"] = dict(sorted(self.dropped.items()))
        return out


def stats_path(output: str | Path) -> Path:
    """`results/x/part.parquet` -> `results/x/part.stats.json` (the ledger file beside an output)."""
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + ".stats.json")


def drops_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + ".drops.parquet")


def write_stats(path: str | Path, stats: Iterable[StageStats]) -> list[StageStats]:
    """Check every entry and write them as one JSON list."""
    stats = list(stats)
    for entry in stats:
        entry.check()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([s.to_dict() for s in stats], indent=1, sort_keys=True) + "\n")
    return stats


def read_stats(paths: Iterable[str | Path]) -> list[StageStats]:
    """Read stats files (each one object or a list) and check each entry."""
    out: list[StageStats] = []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        for item in payload if isinstance(payload, list) else [payload]:
            entry = StageStats(item["stage"], item["source"], item["rows_in"], item["kept"], dict(item["dropped"]))
            entry.check()
            out.append(entry)
    return out


def merge_stats(stats: Iterable[StageStats]) -> dict[tuple[str, str], StageStats]:
    """Sum entries per (stage, source)."""
    merged: dict[tuple[str, str], StageStats] = {}
    for entry in stats:
        key = (entry.stage, entry.source)
        merged[key] = merged[key].merged(entry) if key in merged else entry
    return merged


def drops_table(rows: Iterable[dict]) -> pa.Table:
    """Rows of `uid, source, stage, reason, detail` as a table with DROP_SCHEMA."""
    rows = list(rows)
    return pa.Table.from_pylist(
        [{name: (None if row.get(name) is None else str(row[name])) for name in DROP_SCHEMA.names} for row in rows],
        schema=DROP_SCHEMA,
    )


def write_drops(path: str | Path, table: pa.Table) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.select(DROP_SCHEMA.names).cast(DROP_SCHEMA), path)


class Ledger:
    """One job's ledger, tallied as rows go by: per-source counts and one drop record per dropped row.

    Every stage records through it (`keep`, `drop`, `drop_count`) and writes it once (`write`), so
    the per-source bookkeeping and the `rows_in = kept + dropped` check exist in one place.
    """

    def __init__(self, stage: str):
        self.stage = stage
        self.stats: dict[str, StageStats] = {}
        self.drop_rows: list[dict] = []

    def entry(self, source: str) -> StageStats:
        """The source's counts (created at its first row)."""
        entry = self.stats.get(source)
        if entry is None:
            entry = self.stats[source] = StageStats(self.stage, source)
        return entry

    def keep(self, source: str, count: int = 1) -> None:
        entry = self.entry(source)
        entry.rows_in += count
        entry.kept += count

    def drop(self, uid: str | None, source: str, reason: str, detail: str | None = None) -> None:
        """A dropped row, counted and recorded with its reason."""
        entry = self.entry(source)
        entry.rows_in += 1
        entry.drop(reason)
        self.drop_rows.append({"uid": uid, "source": source, "stage": self.stage, "reason": reason, "detail": detail})

    def drop_count(self, source: str, reason: str, count: int) -> None:
        """Dropped rows counted only (no per-row record, e.g. the keyword stage's non-matches)."""
        entry = self.entry(source)
        entry.rows_in += count
        entry.drop(reason, count)

    def absorb(self, other: "Ledger") -> None:
        """Add another ledger of the same stage (e.g. one input file's) to this one."""
        if other.stage != self.stage:
            raise ValueError(f"cannot add a {other.stage} ledger to a {self.stage} ledger")
        for source, entry in other.stats.items():
            self.stats[source] = self.entry(source).merged(entry)
        self.drop_rows.extend(other.drop_rows)

    def entries(self) -> list[StageStats]:
        """The per-source counts, by source name."""
        return [self.stats[source] for source in sorted(self.stats)]

    def write(self, stats: str | Path, drops: str | Path) -> list[StageStats]:
        """Write the drop records and the checked per-source counts (by source name)."""
        write_drops(drops, drops_table(self.drop_rows))
        return write_stats(stats, self.entries())
