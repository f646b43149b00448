"""Assembly stage, audit: checks the whole run's invariant after the shards are written.

Reads the ledger files it is given (the rule's declared `ledger` input: `*.stats.json`,
`*.drops.parquet`; the CLI without them finds them under `results/`), the final tables, the shard
manifests and every shard member, each shard streamed once (hashed while its samples are read);
writes a JSON report and lists each violation by name. A subset the run did not build (no PUB11
source, or no RS3 dataset) is named in the report's `absent` with the reason, and not checked.

Size: one check per invariant (ledger arithmetic, drop records, shard membership and readability,
funnel), all over the same loaded run, written into one report.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq
from PIL import Image

from rs5m.assemble.funnel import PUB11_STAGES
from rs5m.assemble.manifest import MEMBER_NAMES, PUB11, RS3, SUBSETS, Manifest
from rs5m.assemble.settings import AuditSettings
from rs5m.assemble.split import split_of
from rs5m.columns import PUB11_SOURCES, UID
from rs5m.ledger import LedgerError, StageStats, merge_stats, read_stats
from rs5m.reasons import REGISTRY, count_only_reasons, reasons_of
from rs5m.tar import iter_shard_samples

# Violations listed per check before the rest are summarised as a count.
MAX_LISTED = 20


@dataclass
class AuditResult:
    violations: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> str:
        return json.dumps(dict(asdict(self), ok=self.ok), indent=1, sort_keys=True) + "\n"


class _Violations:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._per_check: Counter = Counter()

    def add(self, check: str, message: str) -> None:
        self._per_check[check] += 1
        if self._per_check[check] <= MAX_LISTED:
            self.items.append(f"{check}: {message}")

    def finish(self) -> list[str]:
        for check, count in sorted(self._per_check.items()):
            if count > MAX_LISTED:
                self.items.append(f"{check}: ... and {count - MAX_LISTED} more")
        return self.items


def order_chain(entries: list[StageStats], stage_order: list[str] | None) -> list[StageStats]:
    """The stages of one source in pipeline order.

    The order given, else rs5m.assemble.funnel.PUB11_STAGES when it names every stage; otherwise filters only shrink, so sorting by (rows_in, kept) descending
    gives the chain order whenever a valid chain exists (a stage that drops nothing sorts before
    the one it feeds because its kept equals its rows_in).
    """
    if not stage_order and all(e.stage in PUB11_STAGES for e in entries):
        stage_order = list(PUB11_STAGES)
    if stage_order:
        rank = {stage: index for index, stage in enumerate(stage_order)}
        return sorted(entries, key=lambda e: rank.get(e.stage, len(rank)))
    return sorted(entries, key=lambda e: (-e.rows_in, -e.kept, e.stage))


SOURCE_COLUMN = {PUB11: "source", RS3: "dataset"}


def _final_counts(run: Path, subsets: Iterable[str]) -> tuple[dict[str, str], Counter]:
    """{uid: source} of every kept sample (PUB11 source or RS3 dataset) and counts per source."""
    kept: dict[str, str] = {}
    counts: Counter = Counter()
    for subset in subsets:
        source_column = SOURCE_COLUMN[subset]
        table = pq.read_table(run / f"results/{subset}/final.parquet", columns=[UID, source_column])
        for uid, source in zip(table.column(UID).to_pylist(), table.column(source_column).to_pylist()):
            counts[source] += 1
            if uid in kept:
                kept[uid] = "\0duplicate"
            else:
                kept[uid] = source
    return kept, counts


def _ledger_files(run: Path, suffix: str, ledger: list[Path] | None = None) -> list[Path]:
    """The given ledger files ending in `suffix`; without a list (the CLI), those under `results/`."""
    if ledger is not None:
        return sorted({p for p in ledger if p.name.endswith(suffix)})
    results = run / "results"
    return sorted(p for p in results.rglob(f"*{suffix}") if "shards" not in p.relative_to(results).parts[:1])


def check_ledger(
    run: Path,
    final_counts: Counter,
    violations: _Violations,
    stage_order: list[str] | None,
    checked: dict[str, int],
    ledger: list[Path] | None = None,
) -> tuple[dict[str, int], set[str]]:
    """Arithmetic per stats entry, chains per source, final kept vs the final tables, drop records.

    Returns {source: kept at the last stage} and the uids of every drop record.
    """
    entries: list[StageStats] = []
    stats_files = _ledger_files(run, ".stats.json", ledger)
    for path in stats_files:
        try:
            entries += read_stats([path])
        except (LedgerError, KeyError, ValueError) as error:
            violations.add("ledger_arithmetic", f"{_relative(path, run)}: {error}")
    checked["stats_files"] = len(stats_files)
    per_source: dict[str, list[StageStats]] = defaultdict(list)
    for (_stage, source), entry in merge_stats(entries).items():
        per_source[source].append(entry)
    last_kept: dict[str, int] = {}
    for source, chain in sorted(per_source.items()):
        chain = order_chain(chain, stage_order)
        if stage_order:
            for entry in chain:
                if entry.stage not in stage_order:
                    violations.add("ledger_chain", f"{source}: stage {entry.stage!r} not in audit.stage_order")
        for before, after in zip(chain, chain[1:]):
            if after.rows_in != before.kept:
                violations.add(
                    "ledger_chain",
                    f"{source}: {after.stage}.rows_in={after.rows_in} != {before.stage}.kept={before.kept}",
                )
        last_kept[source] = chain[-1].kept
        if chain[-1].kept != final_counts.get(source, 0):
            violations.add(
                "ledger_final",
                f"{source}: last stage {chain[-1].stage} kept {chain[-1].kept} but the final table has "
                f"{final_counts.get(source, 0)}",
            )
    for source in sorted(final_counts):
        if source in PUB11_SOURCES and source not in per_source:
            violations.add("ledger_final", f"{source}: {final_counts[source]} kept rows but no ledger entry")
    checked["ledger_sources"] = len(per_source)
    return last_kept, _check_drops(run, entries, violations, checked, ledger)


def _relative(path: Path, run: Path) -> str:
    try:
        return str(path.relative_to(run))
    except ValueError:
        return str(path)


def _check_drops(
    run: Path,
    entries: list[StageStats],
    violations: _Violations,
    checked: dict[str, int],
    ledger: list[Path] | None = None,
) -> set[str]:
    count_only = count_only_reasons()
    expected = Counter()
    for entry in entries:
        for reason, count in entry.dropped.items():
            expected[(entry.stage, entry.source, reason)] += count
    recorded: Counter = Counter()
    drop_uids: Counter = Counter()
    drop_files = _ledger_files(run, ".drops.parquet", ledger)
    for path in drop_files:
        table = pq.read_table(path, columns=["uid", "source", "stage", "reason"])
        for row in table.to_pylist():
            recorded[(row["stage"], row["source"], row["reason"])] += 1
            drop_uids[row["uid"]] += 1
    checked["drop_files"] = len(drop_files)
    checked["drop_rows"] = sum(recorded.values())
    for key in sorted(set(expected) | set(recorded)):
        stage, source, reason = key
        if stage in REGISTRY and reason not in reasons_of(stage):
            violations.add("drop_reason", f"{stage}/{source}/{reason}: not a reason of the {stage} stage")
        if recorded[key] == expected[key]:
            continue
        if recorded[key] == 0 and reason in count_only:
            continue
        violations.add(
            "drop_records",
            f"{stage}/{source}/{reason}: ledger counts {expected[key]}, drop records {recorded[key]}",
        )
    for uid, count in sorted(drop_uids.items()):
        if count > 1:
            violations.add("terminal_state", f"uid {uid} dropped {count} times")
    return set(drop_uids)


class _HashingReader(io.RawIOBase):
    """A read-only file that hashes and counts every byte read through it."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes += n
        return n or 0

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read (and hash) whatever the tar reader left: end-of-archive blocks, trailing bytes."""
        while self.raw.readable():
            data = self.raw.read(chunk)
            if not data:
                return
            self.sha256.update(data)
            self.bytes += len(data)


def check_shards(
    run: Path,
    shards_dir: Path,
    kept: dict[str, str],
    dropped: set[str],
    violations: _Violations,
    checked: dict[str, int],
    verify_images: bool,
    subsets: Iterable[str] = SUBSETS,
) -> Counter:
    """Every listed shard intact, every member readable, every kept uid in exactly one shard.

    Returns shard samples per source.
    """
    shard_uids: Counter = Counter()
    per_source: Counter = Counter()
    listed: set[Path] = set()
    for subset in subsets:
        manifest_path = shards_dir / f"{subset}.manifest.json"
        if not manifest_path.exists():
            violations.add("manifest", f"{_relative(manifest_path, run)} missing")
            continue
        manifest = Manifest.read(manifest_path)
        names = MEMBER_NAMES[manifest.member_names]
        manifest_counts: Counter = Counter()
        for shard in manifest.shards:
            path = shards_dir / shard.path
            listed.add(path.resolve())
            if not path.exists():
                violations.add("shard_missing", shard.path)
                continue
            samples = 0
            with open(path, "rb", buffering=0) as raw:
                reader = _HashingReader(raw)
                try:
                    for key, members in iter_shard_samples(reader):
                        samples += 1
                        source = _check_sample(
                            shard.path,
                            shard.split,
                            manifest.val_fraction,
                            names,
                            key,
                            members,
                            violations,
                            verify_images,
                        )
                        shard_uids[key] += 1
                        if source:
                            per_source[source] += 1
                            manifest_counts[(source, shard.split)] += 1
                except Exception as error:  # noqa: BLE001 - a truncated or corrupt tar: name it, keep auditing
                    violations.add("shard_unreadable", f"{shard.path}: {error}")
                reader.drain()
            if reader.bytes != shard.bytes or reader.sha256.hexdigest() != shard.sha256:
                violations.add("shard_checksum", f"{shard.path}: size or sha256 differs from the manifest")
            if samples != shard.samples:
                violations.add("shard_count", f"{shard.path}: manifest says {shard.samples}, holds {samples}")
            checked["shards"] = checked.get("shards", 0) + 1
        for source, splits in manifest.counts.items():
            for split, count in splits.items():
                if manifest_counts[(source, split)] != count:
                    violations.add(
                        "shard_count",
                        f"{subset} manifest: {source}/{split} says {count}, shards hold "
                        f"{manifest_counts[(source, split)]}",
                    )
    for folder in ("train", "val"):
        for path in sorted((shards_dir / folder).glob("*.tar*")) if (shards_dir / folder).is_dir() else []:
            if path.resolve() not in listed:
                violations.add("shard_unlisted", f"{path.relative_to(shards_dir)} is in no manifest")
    for uid, count in sorted(shard_uids.items()):
        if count > 1:
            violations.add("shard_uid", f"uid {uid} in {count} shard samples")
        if uid not in kept:
            violations.add("shard_uid", f"uid {uid} is in a shard but in no final table")
    for uid, source in sorted(kept.items()):
        if source == "\0duplicate":
            violations.add("terminal_state", f"uid {uid} appears twice in the final tables")
        elif uid not in shard_uids:
            violations.add("shard_uid", f"uid {uid} ({source}) kept but in no shard")
    for uid in sorted(dropped & kept.keys()):
        violations.add("terminal_state", f"uid {uid} is both dropped and kept")
    checked["shard_samples"] = sum(shard_uids.values())
    return per_source


def _check_sample(
    shard: str,
    split: str,
    val_fraction: float,
    names: dict,
    key: str,
    members: dict,
    violations: _Violations,
    verify_images: bool,
) -> str | None:
    where = f"{shard}:{key}"
    wanted = {names["caption"], names["json"]} | ({names["img_name"], names["image"]} if names["image"] else set())
    missing = wanted - members.keys()
    if missing:
        violations.add("member_missing", f"{where}: {sorted(missing)}")
    image_keys = [names["image"]] if names["image"] else sorted(set(members) - wanted)
    try:
        meta = json.loads(members[names["json"]].decode("utf-8"))
        members.get(names["caption"], b"").decode("utf-8")
        if names["img_name"]:
            members.get(names["img_name"], b"").decode("utf-8")
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        violations.add("member_unreadable", f"{where}: {error!r}")
        return None
    if verify_images:
        for image_key in image_keys:
            try:
                with Image.open(io.BytesIO(members.get(image_key, b""))) as image:
                    image.verify()
            except Exception as error:  # noqa: BLE001 - any decoder failure is this member's violation
                violations.add("member_unreadable", f"{where}.{image_key}: {error}")
    if meta.get("uid") != key:
        violations.add("member_unreadable", f"{where}: json uid {meta.get('uid')!r}")
    if split_of(key, val_fraction) != split:
        violations.add("split", f"{where}: in {split} but its uid belongs to {split_of(key, val_fraction)}")
    return meta.get("source")


def _funnel_remain(path: Path) -> dict[str, int]:
    """{source: remain} from the funnel JSON (a list of rows, or {"rows": [...]}), if it has them."""
    payload = json.loads(path.read_text())
    rows = payload.get("rows", payload.get("sources", [])) if isinstance(payload, dict) else payload
    out = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and "source" in row and "remain" in row and row["source"] != "total":
            out[row["source"]] = int(row["remain"])
    return out


def present_subsets(run: Path, absent: dict[str, str] | None = None) -> list[str]:
    """The subsets to check: those not declared absent; without a declaration, those with a final table."""
    if absent is not None:
        return [s for s in SUBSETS if s not in absent]
    return [s for s in SUBSETS if (run / f"results/{s}/final.parquet").exists()]


def audit(
    run_dir: str | Path = ".",
    shards_dir: str | Path | None = None,
    stage_order: Iterable[str] | None = None,
    verify_images: bool = True,
    ledger: Iterable[str | Path] | None = None,
    absent: dict[str, str] | None = None,
) -> AuditResult:
    """Check the run's invariant; the result lists every violation found (empty when it holds).

    `ledger`: the ledger files to read (stats JSON and drop records); None finds them under
    `results/`. `absent`: {subset: why} for a subset the run does not build; None means every subset
    whose final table exists is checked and the others are reported absent.
    """
    run = Path(run_dir)
    shards = Path(shards_dir) if shards_dir else run / "results/shards"
    violations, checked = _Violations(), {}
    subsets = present_subsets(run, absent)
    if absent is None:
        absent = {s: "no final table in this run folder" for s in SUBSETS if s not in subsets}
    ledger_paths = None if ledger is None else [run / p for p in map(Path, ledger)]
    kept, final_counts = _final_counts(run, subsets)
    checked["kept"] = len(kept)
    last_kept, dropped = check_ledger(
        run, final_counts, violations, list(stage_order) if stage_order else None, checked, ledger_paths
    )
    shard_counts = check_shards(run, shards, kept, dropped, violations, checked, verify_images, subsets)
    for source in sorted(set(last_kept) | set(shard_counts)):
        if source in last_kept and last_kept[source] != shard_counts.get(source, 0):
            violations.add(
                "funnel_vs_shards",
                f"{source}: funnel remain {last_kept[source]}, shards hold {shard_counts.get(source, 0)}",
            )
    funnel = run / "results/stats/funnel.json"
    if funnel.exists():
        for source, remain in sorted(_funnel_remain(funnel).items()):
            if remain != shard_counts.get(source, 0):
                violations.add(
                    "funnel_vs_shards",
                    f"funnel.json {source}: remain {remain}, shards hold {shard_counts.get(source, 0)}",
                )
    return AuditResult(violations.finish(), checked, dict(sorted(absent.items())))


def write_audit(
    run_dir: str | Path,
    report: str | Path,
    settings: AuditSettings,
    ledger: Iterable[str | Path] | None,
    absent: dict[str, str] | None,
) -> AuditResult:
    """The rule's entry: write the JSON report, then fail if the invariant does not hold.
    An empty `audit.stage_order` leaves the order to `order_chain`."""
    result = audit(
        run_dir,
        stage_order=settings.audit.stage_order or None,
        verify_images=settings.audit.verify_images,
        ledger=ledger,
        absent=absent,
    )
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(result.to_json())
    if not result.ok:
        raise AssertionError("audit failed:\n" + "\n".join(result.violations))
    return result


def add_audit_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `rs5m audit` on the CLI's subparsers."""
    parser = subparsers.add_parser("audit", help="check that every row has one terminal state and the shards match")
    parser.add_argument("run_dir", nargs="?", default=".", help="the run folder (holding results/)")
    parser.add_argument("--shards", default=None, help="shards folder (default: RUN_DIR/results/shards)")
    parser.add_argument(
        "--stage-order", default=None, help="comma-separated ledger stage names in pipeline order (default: inferred)"
    )
    parser.add_argument("--no-verify-images", action="store_true", help="skip opening every image")
    parser.add_argument("--json", default=None, help="also write the result as JSON to this path")
    parser.set_defaults(func=run_audit_command)
    return parser


def run_audit_command(args: argparse.Namespace) -> int:
    result = audit(
        args.run_dir,
        args.shards,
        args.stage_order.split(",") if args.stage_order else None,
        verify_images=not args.no_verify_images,
    )
    if args.json:
        Path(args.json).write_text(result.to_json())
    summary = ", ".join(f"{k}={v}" for k, v in sorted(result.checked.items()))
    for subset, why in result.absent.items():
        print(f"audit: subset {subset} absent: {why}")
    if result.ok:
        print(f"audit passed: {summary}")
        return 0
    print(f"audit FAILED with {len(result.violations)} violation(s) ({summary}):", file=sys.stderr)
    for violation in result.violations:
        print(f"  - {violation}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rs5m")
    add_audit_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
