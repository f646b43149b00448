"""PUB11 stage 1: read a chunk of one source's metadata files and keep the rows whose captions match a keyword.

Reads native metadata files; writes the kept rows (normalised columns + native `src_*` columns),
the ledger (`.stats.json`, `.drops.parquet`) and a per-file account (`.files.json`).

Which reason a dropped row gets: only candidate rows (a caption field matches a pattern, or the
captions are null/blank) are classified, in this order: null_url, bad_url_scheme, null_caption,
caption_too_long; those drops are recorded row by row. Every other row counts as no_keyword_match
(so a broken URL or an over-long caption on a row that matches no pattern is no_keyword_match).
Parquet candidates are pre-selected in bulk (`_candidate_rows`); text formats go through the same
classification query directly.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rs5m import columns as C
from rs5m import duck
from rs5m.ledger import Ledger, StageStats, drops_path, stats_path
from rs5m.pub11.keyword_scan import LiteralScanner
from rs5m.pub11.keywords import any_pattern_regex, load_patterns, single_pattern_regexes
from rs5m.pub11.settings import MetadataSettings, SourceSettings
from rs5m.pub11.sources import (
    INDEX_TABLE,
    SourceFormat,
    SourceFormatError,
    build_format,
    in_index,
    load_index,
    quote_ident,
    sql_string,
)
from rs5m.reasons import count_only_of
from rs5m.tables import KEYWORD_SCHEMA

log = logging.getLogger(__name__)

STAGE = "keyword_filter"
# Reasons recorded as counts only: they cover almost every row of a web crawl.
COUNT_ONLY_REASONS = count_only_of(STAGE)

NORMALISED_SCHEMA = KEYWORD_SCHEMA  # the stage's columns before the native ones (rs5m.tables)


@dataclass
class FileAccount:
    """What happened to one input file: its row counts, or why it could not be read."""

    path: str
    status: str = "ok"
    error: str | None = None
    rows_in: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _int_expression(column: str | None, available: set[str]) -> str:
    if column is None or column not in available:
        return "NULL::BIGINT"
    return f"TRY_CAST(TRY_CAST({quote_ident(column)} AS DOUBLE) AS BIGINT)"


def _blob_sql(fmt: SourceFormat) -> str:
    """All caption fields of a row as one text, a line apart: what the patterns are matched against."""
    parts = [fmt.caption_expression(c) for c in fmt.captions]
    parts += [f"array_to_string(CAST({quote_ident(c)} AS VARCHAR[]), chr(10))" for c in fmt.list_captions]
    return parts[0] if len(parts) == 1 else f"concat_ws(chr(10), {', '.join(parts)})"


def _classify_sql(
    fmt: SourceFormat,
    relation: str,
    available: set[str],
    max_caption_bytes: int,
    patterns: list[str],
    order_by: str | None = None,
) -> str:
    """One scan: every candidate row (a keyword match, or a blank caption) with its drop reason, if any.

    Only candidates are classified: the scan's per-row work on the >99.9 % of other rows is one
    blank test and one RE2 call on the caption. The alternation is a literal so RE2 compiles it once;
    per-pattern matching runs only on kept rows.
    """
    any_regex = sql_string(any_pattern_regex(patterns))
    # One constant expression per pattern (compiled once); a pattern's regex built per row would be
    # compiled per row.
    matched = (
        "list_filter(["
        + ", ".join(
            f"CASE WHEN regexp_matches(_blob, {sql_string(regex)}) THEN {sql_string(pattern)} END"
            for pattern, regex in zip(patterns, single_pattern_regexes(patterns))
        )
        + "], lambda x: x IS NOT NULL)"
    )
    url = f"CAST({quote_ident(fmt.url)} AS VARCHAR)"
    fields = [fmt.caption_expression(c) for c in fmt.captions]
    lists = [f"CAST({quote_ident(c)} AS VARCHAR[])" for c in fmt.list_captions]
    blob = _blob_sql(fmt)
    all_captions = " || ".join(
        [f"[{', '.join(fields)}]::VARCHAR[]"] * bool(fields) + [f"coalesce({e}, [])" for e in lists]
    )
    first_match = " ".join(
        [f"WHEN regexp_matches({f}, {any_regex}) THEN {f}" for f in fields]
        + [
            f"WHEN len(list_filter({e}, lambda x: regexp_matches(x, {any_regex}))) > 0 THEN list_filter({e}, lambda x: regexp_matches(x, {any_regex}))[1]"
            for e in lists
        ]
    )
    native = ", ".join(f"{quote_ident(c)} AS {quote_ident(C.NATIVE_PREFIX + c)}" for c in sorted(available))
    where = f"WHERE {fmt.row_filter}" if fmt.row_filter else ""
    return f"""
    WITH base AS (
        SELECT *, {url} AS _url, {blob} AS _blob FROM {relation} {where}
    ), candidates AS (
        SELECT * FROM base WHERE _blob IS NULL OR trim(_blob) = '' OR regexp_matches(_blob, {any_regex})
    ), classified AS (
        SELECT *, CASE
            WHEN _url IS NULL OR trim(_url) = '' THEN 'null_url'
            WHEN NOT regexp_matches(trim(_url), '^(?i)https?://[^/?#]') THEN 'bad_url_scheme'
            WHEN _blob IS NULL OR trim(_blob) = '' THEN 'null_caption'
            WHEN strlen(_blob) > {int(max_caption_bytes)} THEN 'caption_too_long'
        END AS _reason FROM candidates
    )
    SELECT
        _reason,
        trim(_url) AS {C.URL},
        CASE WHEN _reason IS NULL THEN (CASE {first_match} END) END AS {C.CAPTION},
        list_filter({all_captions}, lambda x: x IS NOT NULL AND x <> '') AS {C.CAPTIONS},
        CASE WHEN _reason IS NULL THEN {matched} END AS {C.MATCHED_KEYWORDS},
        {_int_expression(fmt.width, available)} AS {C.WIDTH},
        {_int_expression(fmt.height, available)} AS {C.HEIGHT},
        {native}
    FROM classified
    {f"ORDER BY {order_by}" if order_by else ""}
    """


# Rows per string that RE2 searches in one call: one call per row costs more than the search itself
# (captions are ~50 bytes), while large groups make more non-matching rows candidates.
GROUP_ROWS = 16
# Rows per Arrow batch of the candidate scan: large enough that a scan call and DuckDB's export of a
# batch cost more than their set-up, small enough that the batches in flight (`threads` + 1) stay a
# few hundred MB for alt-text-like captions.
BATCH_ROWS = 1 << 19


def _candidate_rows(
    con: duckdb.DuckDBPyConnection, fmt: SourceFormat, path: str, patterns: list[str], threads: int
) -> pa.Array:
    """File row numbers of a parquet file's rows that may match a pattern or may have a blank caption.

    A superset of the rows the classification query keeps or records: that query still decides
    each of these rows. Matches are found with one multi-literal scan per batch over the Arrow
    values buffer (rs5m.pub11.keyword_scan) when the patterns allow it; otherwise with RE2 on runs of
    GROUP_ROWS captions (`_regex_matching_rows`). Batches are scanned on `threads` threads while
    DuckDB exports the next ones (both release the GIL); the result keeps file order.
    """
    scanner = LiteralScanner(patterns) if LiteralScanner.supports(patterns) else None
    regex = any_pattern_regex(patterns)
    query = f"SELECT file_row_number, {_blob_sql(fmt)} FROM read_parquet({sql_string(path)}, file_row_number=true)"

    def pick(batch: pa.RecordBatch) -> pa.Array:
        rows, captions = batch.column(0), batch.column(1)
        if not pa.types.is_string(captions.type) and not pa.types.is_large_string(captions.type):
            captions = captions.cast(pa.large_string())
        values = captions.buffers()[2]
        if values is None or values.size == 0:  # every caption is empty or null: all are blank candidates
            return rows
        offsets = np.frombuffer(captions.buffers()[1], np.int32 if pa.types.is_string(captions.type) else np.int64)
        offsets = offsets[captions.offset : captions.offset + len(captions) + 1]
        maybe = scanner.matching_rows(captions) if scanner else _regex_matching_rows(captions, offsets, values, regex)
        # A blank caption (the SQL's trim(...) = '') starts with whitespace, which is ASCII <= 0x20
        # or a non-ASCII character; null slots are blank too.
        lengths = np.diff(offsets)
        data = np.frombuffer(values, np.uint8)
        first = data[np.minimum(offsets[:-1], len(data) - 1)]
        maybe |= (lengths == 0) | (first <= 0x20) | (first >= 0x7F)
        if captions.null_count:
            maybe |= captions.is_null().to_numpy(zero_copy_only=False)
        return rows.filter(pa.array(maybe))

    picked: list[pa.Array] = []
    in_flight: deque[Future] = deque()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
            in_flight.append(pool.submit(pick, batch))
            if len(in_flight) > threads:
                picked.append(in_flight.popleft().result())
        picked.extend(future.result() for future in in_flight)
    return pa.concat_arrays(picked).cast(pa.int64()) if picked else pa.array([], pa.int64())


def _regex_matching_rows(captions: pa.Array, offsets: np.ndarray, values: pa.Buffer, regex: str) -> np.ndarray:
    """Rows matching `regex`, decided first on whole runs of GROUP_ROWS captions.

    The captions of a run lie back to back in the Arrow values buffer, so a zero-copy view makes
    each run one string for RE2. A match inside a row is a match inside its run; only the rows of
    matching runs are then searched one by one.
    """
    bounds = np.append(np.arange(0, len(captions), GROUP_ROWS), len(captions))
    runs = pa.Array.from_buffers(
        captions.type, len(bounds) - 1, [None, pa.py_buffer(np.ascontiguousarray(offsets[bounds])), values]
    )
    hit = pc.match_substring_regex(runs, regex).to_numpy(zero_copy_only=False)
    maybe = np.repeat(hit, np.diff(bounds))
    # Rows of matching runs, one by one: drops the rows that only a boundary-crossing match hit.
    in_runs = np.flatnonzero(maybe)
    maybe[in_runs] = pc.match_substring_regex(captions.take(pa.array(in_runs)), regex).to_numpy(zero_copy_only=False)
    return maybe


def _read_one_file(
    con: duckdb.DuckDBPyConnection,
    source: str,
    fmt: SourceFormat,
    path: str,
    patterns: list[str],
    max_caption_bytes: int,
    threads: int,
) -> tuple[pa.Table, Ledger]:
    """The kept rows of one file and the file's ledger (every row kept or dropped once)."""
    ledger = Ledger(STAGE)
    ledger.entry(source)
    relation = fmt.relation(path)
    available = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    missing = [c for c in fmt.required_columns if c not in available]
    if missing:
        raise SourceFormatError(
            f"{path}: format {fmt.name!r} needs column(s) {', '.join(missing)}; the file has {', '.join(sorted(available)) or 'none'}"
        )
    if fmt.index_file:
        _register_index_rows(con, fmt, relation)
    # Per row filter: the rows that pass the ones before it and fail it.
    passed = "true"
    filter_counts = []
    for sql, _ in fmt.row_filters:
        filter_counts.append(f"count(*) FILTER (WHERE {passed} AND NOT coalesce(({sql}), false))")
        passed = f"{passed} AND coalesce(({sql}), false)"
    # For text formats count(COLUMNS(*)) makes DuckDB parse every field, so bad UTF-8 is seen (and
    # rejected) here too; parquet row counts come from the footer without reading any column.
    rejects_lines = fmt.rejects(path)
    parse_all = ", count(COLUMNS(*))" if rejects_lines else ""
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    counts = con.sql(f"SELECT count(*), {', '.join(filter_counts) or '0'}{parse_all} FROM {relation}").fetchall()[0]
    scanned = counts[0]
    filtered = [(reason, counts[1 + i]) for i, (_, reason) in enumerate(fmt.row_filters)]
    filtered_out = sum(n for _, n in filtered)

    if rejects_lines:
        rejects = con.sql(
            "SELECT line, string_agg(DISTINCT error_type || ': ' || error_message, '; ') FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
        for line, message in rejects:
            uid = C.make_uid(source, f"#line{line}", file=Path(path).name)
            ledger.drop(uid, source, "undecodable_row", f"line {line}: {message}")

    if fmt.reads_parquet(path):
        # Bulk pre-selection (see _candidate_rows); the SQL below then decides on those rows alone.
        con.register("_candidates", pa.table({"row": _candidate_rows(con, fmt, path, patterns, threads)}))
        relation = (
            f"(SELECT p.* FROM read_parquet({sql_string(path)}, file_row_number=true) AS p "
            f"SEMI JOIN _candidates ON p.file_row_number = _candidates.row)"
        )
        sql = _classify_sql(fmt, relation, available, max_caption_bytes, patterns, order_by="file_row_number")
    else:
        sql = _classify_sql(fmt, relation, available, max_caption_bytes, patterns)
    table = con.sql(sql).to_arrow_table()

    reasons = table.column("_reason").to_pylist()
    urls = table.column(C.URL).to_pylist()
    uids = _uids(source, urls, Path(path).name)
    keep_index = [i for i, reason in enumerate(reasons) if reason is None]
    for i, reason in enumerate(reasons):
        if reason is not None:
            ledger.drop(uids[i], source, reason, (urls[i] or "")[:500])
    kept = table.take(pa.array(keep_index, pa.int64())).drop_columns(["_reason"])
    kept = kept.add_column(0, C.UID, pa.array([uids[i] for i in keep_index], pa.string()))
    kept = kept.add_column(1, C.SOURCE, pa.array([source] * kept.num_rows, pa.string()))
    ledger.keep(source, kept.num_rows)
    for reason, count in filtered:
        ledger.drop_count(source, reason, count)
    per_row = len(reasons) - len(keep_index)
    ledger.drop_count(source, "no_keyword_match", scanned - filtered_out - per_row - kept.num_rows)
    return kept, ledger


def _register_index_rows(con: duckdb.DuckDBPyConnection, fmt: SourceFormat, relation: str) -> None:
    """The file's uids that the index file holds, as the table INDEX_TABLE its row filter reads."""
    uids = [
        u
        for (u,) in con.execute(
            f"SELECT DISTINCT CAST({quote_ident(fmt.index_column)} AS VARCHAR) FROM {relation}"
        ).fetchall()
    ]
    selected = in_index(load_index(fmt.index_file), uids)
    con.register(INDEX_TABLE, pa.table({"uid": pa.array([u for u, keep in zip(uids, selected) if keep], pa.string())}))


def _uids(source: str, urls: list[str | None], file_name: str) -> list[str]:
    """uid per row in file order (rs5m.columns.make_uid); the n-th repeat of a URL within the
    file gets repeat index n. Rows without a URL are named by their position in the file."""
    uids = []
    seen: dict[str, int] = {}
    for position, url in enumerate(urls):
        key = url or f"#row{position}"
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        uids.append(C.make_uid(source, key, repeat, file=file_name))
    return uids


def _conform(table: pa.Table) -> pa.Table:
    """Normalised columns first with their fixed types, then the native columns as read."""
    normalised = [table.column(f.name).cast(f.type) for f in NORMALISED_SCHEMA]
    native = [n for n in table.column_names if n.startswith(C.NATIVE_PREFIX)]
    return pa.Table.from_arrays(normalised + [table.column(n) for n in native], names=NORMALISED_SCHEMA.names + native)


def filter_chunk(
    source: str,
    files: list[str],
    output: str,
    keywords: str,
    source_settings: SourceSettings,
    index_file: str | None,
    settings: MetadataSettings,
    threads: int,
    memory_limit: str | None,
) -> StageStats:
    """Keyword-filter one chunk of a source; write kept rows, ledger and per-file accounts.

    DuckDB runs on `threads` within `memory_limit` (rs5m.duck); the candidate scan uses as many.
    `source_settings`, `index_file`: `sources.<name>.*` (rs5m.pub11.sources.build_format).
    """
    max_caption_bytes, on_bad_file = settings.max_caption_bytes, settings.on_bad_file
    fmt = build_format(source_settings.format or source, source_settings.columns, source_settings.filters, index_file)
    patterns = load_patterns(keywords)
    con = duck.connect(threads, memory_limit)
    ledger = Ledger(STAGE)
    ledger.entry(source)
    tables: list[pa.Table] = []
    accounts: list[FileAccount] = []
    for path in files:
        started = time.perf_counter()
        try:
            kept, file_ledger = _read_one_file(con, source, fmt, path, patterns, max_caption_bytes, threads)
        except (duckdb.Error, SourceFormatError, OSError) as error:
            message = f"cannot be read as {fmt.name}: {str(error).splitlines()[0]}"
            if on_bad_file == "fail":
                raise SourceFormatError(f"{path}: {message}") from error
            log.error("%s: %s (file skipped, recorded in %s)", path, message, Path(output).with_suffix(".files.json"))
            accounts.append(
                FileAccount(path, status="unreadable", error=message, seconds=time.perf_counter() - started)
            )
            continue
        counts = file_ledger.entry(source)
        account = FileAccount(
            path,
            rows_in=counts.rows_in,
            kept=counts.kept,
            dropped=dict(counts.dropped),
            seconds=round(time.perf_counter() - started, 3),
        )
        accounts.append(account)
        tables.append(_conform(kept))
        ledger.absorb(file_ledger)
        log.info(
            "%s: %d rows in, %d kept, dropped %s (%.1f s, %.0f rows/s)",
            path,
            account.rows_in,
            account.kept,
            account.dropped,
            account.seconds,
            account.rows_in / max(account.seconds, 1e-9),
        )

    out = pa.concat_tables(tables, promote_options="permissive") if tables else NORMALISED_SCHEMA.empty_table()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, output)
    ledger.write(stats_path(output), drops_path(output))
    files_json = Path(output).with_name(Path(output).name.split(".")[0] + ".files.json")
    files_json.write_text(json.dumps([a.__dict__ for a in accounts], indent=1) + "\n")
    return ledger.entry(source)
