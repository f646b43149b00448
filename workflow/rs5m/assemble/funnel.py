"""Statistics: the PUB11 funnel (SPEC 2.2) merged from every stage's ledger files.

Reads `*.stats.json` files; writes `funnel.csv`, `funnel.md` and `funnel.json`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from rs5m.columns import PUB11_SOURCES
from rs5m.ledger import StageStats, merge_stats, read_stats
from rs5m.reasons import DUPLICATE_POOL_HASH, DUPLICATE_URL

# PUB11 stages in DAG order; each one's rows_in must equal the previous one's kept.
PUB11_STAGES = ("keyword_filter", "url_filter", "download", "invalid", "image_dedup", "outliers", "decontamination")

FUNNEL_COLUMNS = (
    "source",
    "rows_in",
    "after_keyword_filter",
    "url_duplicates",
    "pool_hash_duplicates",
    "blocked_urls",
    "download_failed",
    "downloaded",
    "invalid",
    "duplicates",
    "outliers",
    "eval_overlap",
    "remain",
)


@dataclass
class Funnel:
    rows: list[dict]
    problems: list[str]

    @property
    def consistent(self) -> bool:
        return not self.problems


def _row(source: str, by_stage: dict[str, StageStats]) -> dict:
    def kept(stage):
        return by_stage[stage].kept if stage in by_stage else None

    def dropped(stage, reasons=None, exclude=()):
        if stage not in by_stage:
            return None
        return sum(
            n for r, n in by_stage[stage].dropped.items() if (reasons is None or r in reasons) and r not in exclude
        )

    last = next((s for s in reversed(PUB11_STAGES) if s in by_stage), None)
    return {
        "source": source,
        "rows_in": by_stage["keyword_filter"].rows_in if "keyword_filter" in by_stage else None,
        "after_keyword_filter": kept("keyword_filter"),
        "url_duplicates": dropped("url_filter", {DUPLICATE_URL}),
        "pool_hash_duplicates": dropped("url_filter", {DUPLICATE_POOL_HASH}),
        "blocked_urls": dropped("url_filter", exclude={DUPLICATE_URL, DUPLICATE_POOL_HASH}),
        "download_failed": dropped("download"),
        "downloaded": kept("download"),
        "invalid": dropped("invalid"),
        "duplicates": dropped("image_dedup"),
        "outliers": dropped("outliers"),
        "eval_overlap": dropped("decontamination"),
        "remain": kept(last) if last else None,
    }


def build_funnel(stats: Iterable[StageStats], sources: Iterable[str] | None = None) -> Funnel:
    """One row per source plus a total; the chain rows_in(stage) == kept(previous stage) is checked.

    `sources`: the rows, in order; None = the eleven PUB11 sources in SPEC order, then any other
    source the keyword filter read (table sources such as CommonPool) by name. RS3 datasets share
    the decontamination stage but are no PUB11 source.
    """
    merged = merge_stats(s for s in stats if s.stage in PUB11_STAGES)
    if sources is None:
        present = {src for (stage, src) in merged if stage == PUB11_STAGES[0]}
        sources = [s for s in PUB11_SOURCES if s in present] + sorted(present - set(PUB11_SOURCES))
    problems: list[str] = []
    rows = []
    for source in sources:
        by_stage = {stage: entry for (stage, src), entry in merged.items() if src == source}
        if not by_stage:
            continue
        present = [s for s in PUB11_STAGES if s in by_stage]
        for before, after in zip(present, present[1:]):
            if by_stage[after].rows_in != by_stage[before].kept:
                problems.append(
                    f"{source}: {after} has rows_in={by_stage[after].rows_in} but {before} kept {by_stage[before].kept}"
                )
        rows.append(_row(source, by_stage))
    total = {"source": "total"}
    for column in FUNNEL_COLUMNS[1:]:
        values = [r[column] for r in rows if r[column] is not None]
        total[column] = sum(values) if values else None
    rows.append(total)
    for row in rows:
        if row["downloaded"] is not None and row["remain"] is not None:
            lost = sum(row[c] or 0 for c in ("invalid", "duplicates", "outliers", "eval_overlap"))
            if row["downloaded"] - lost != row["remain"]:
                problems.append(
                    f"{row['source']}: downloaded - invalid - duplicates - outliers - eval_overlap != remain"
                )
    return Funnel(rows, problems)


def _cell(value) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def funnel_markdown(funnel: Funnel) -> str:
    header = "| " + " | ".join(FUNNEL_COLUMNS) + " |"
    rule = "|" + "|".join("---" if c == "source" else "---:" for c in FUNNEL_COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(row[c]) for c in FUNNEL_COLUMNS) + " |" for row in funnel.rows]
    note = (
        "\nEvery row: after_keyword_filter - url_duplicates - pool_hash_duplicates - blocked_urls - download_failed "
        "= downloaded (download_failed includes hash_mismatch: bytes other than the pool's sha256), "
        "and downloaded - invalid - duplicates - outliers - eval_overlap = remain (eval_overlap: samples "
        "dropped by the eval-set decontamination, results/stats/decontamination.md). Empty cells: stage not run.\n"
    )
    problems = "".join(f"\n**Inconsistent:** {p}\n" for p in funnel.problems)
    return "\n".join([header, rule, *body]) + "\n" + note + problems


def write_funnel(stats_files: Iterable[str | Path], out_csv: str, out_md: str, out_json: str) -> Funnel:
    funnel = build_funnel(read_stats(stats_files))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FUNNEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(funnel.rows)
    for path, text in (
        (out_csv, buffer.getvalue()),
        (out_md, funnel_markdown(funnel)),
        (
            out_json,
            json.dumps({"rows": funnel.rows, "consistent": funnel.consistent, "problems": funnel.problems}, indent=1)
            + "\n",
        ),
    ):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    if funnel.problems:
        raise ValueError("funnel does not add up:\n" + "\n".join(funnel.problems))
    return funnel


INPUT_FILE_COLUMNS = ("source", "chunk", "path", "status", "rows_in", "kept", "dropped", "seconds", "error")


def write_input_files(file_accounts: Iterable[str | Path], out_csv: str) -> list[dict]:
    """One line per input metadata file: read or unreadable (with the error), and its counts."""
    rows = []
    for account_path in file_accounts:
        account_path = Path(account_path)
        for account in json.loads(account_path.read_text()):
            rows.append(
                {
                    "source": account_path.parent.name,
                    "chunk": account_path.name.split(".")[0],
                    **{k: account.get(k) for k in ("path", "status", "rows_in", "kept", "seconds", "error")},
                    "dropped": json.dumps(account.get("dropped", {}), sort_keys=True),
                }
            )
    with open(out_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INPUT_FILE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def write_run_stats(
    stats_files: Iterable[str | Path],
    file_accounts: Iterable[str | Path],
    out_csv: str,
    out_md: str,
    out_json: str,
    out_input_files: str,
) -> Funnel:
    accounts = write_input_files(file_accounts, out_input_files)
    unreadable = [a for a in accounts if a["status"] != "ok"]
    funnel = write_funnel(stats_files, out_csv, out_md, out_json)
    if unreadable:
        note = "\n".join(f"- {a['path']}: {a['error']}" for a in unreadable)
        with open(out_md, "a") as handle:
            handle.write(f"\n{len(unreadable)} input file(s) could not be read (see input_files.csv):\n{note}\n")
    return funnel
