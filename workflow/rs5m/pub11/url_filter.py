"""URL safety filter and global URL dedup (stage `url_filter`), run once over every source.

Reads `results/pub11/metadata/{source}/{chunk}.parquet`; writes `results/pub11/urldedup/{part}.parquet`.

The keyword-stage columns are kept. The native `src_*` columns differ per source, so they travel as
one JSON string column `native` (object keyed by the native column name without the prefix), which
lets every part share one schema. Parts are split by host (`rs5m.hosts.host_part`): a host's
URLs go to at most `download.parts_per_host` parts, which is what lets each download job pace a host
at its share of `download.per_host_rate`.

Pool hashes: where a source's `columns` name a `sha256` or `phash` column (the value travels in
`native`), a URL-dedup survivor whose hash equals an earlier survivor's (same priority rule: source
order, then uid) is dropped as `duplicate_pool_hash` (detail: the uid kept), first by sha256, then
by phash, before a single request is sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from rs5m import columns as col
from rs5m import duck
from rs5m.hosts import host_part
from rs5m.ledger import Ledger, StageStats, write_drops, write_stats
from rs5m.pub11.settings import UrlFilterSettings
from rs5m.pub11.sources import sql_string
from rs5m.pub11.urls import (
    allowed_networks,
    check_url,
    normalise_url,
    priority_ranks,
    url_host,
)
from rs5m.tables import URLDEDUP_SCHEMA

log = logging.getLogger(__name__)

STAGE = "url_filter"
REASON_DUPLICATE = "duplicate_url"
REASON_POOL_HASH = "duplicate_pool_hash"
NATIVE = col.NATIVE
OUTPUT_SCHEMA = URLDEDUP_SCHEMA  # the keyword columns + `native` (rs5m.tables)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_for(con: duckdb.DuckDBPyConnection, files: list[str]) -> str:
    """A SELECT that maps files of one schema onto OUTPUT_SCHEMA (native columns folded into JSON)."""
    file_list = "[" + ", ".join(sql_string(f) for f in files) + "]"
    names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({file_list})").fetchall()]
    native = [n for n in names if n.startswith(col.NATIVE_PREFIX)]
    if native:
        fields = ", ".join(f"{_quote(n[len(col.NATIVE_PREFIX) :])} := {_quote(n)}" for n in native)
        native_sql = f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"
    else:
        native_sql = "CAST(NULL AS VARCHAR)"

    def pick(name: str, sql_type: str) -> str:
        return f"TRY_CAST({_quote(name)} AS {sql_type})" if name in names else f"CAST(NULL AS {sql_type})"

    return (
        f"SELECT CAST(uid AS VARCHAR) AS uid, CAST(source AS VARCHAR) AS source, CAST(url AS VARCHAR) AS url, "
        f"{pick(col.CAPTION, 'VARCHAR')} AS caption, {pick(col.CAPTIONS, 'VARCHAR[]')} AS captions, "
        f"{pick(col.MATCHED_KEYWORDS, 'VARCHAR[]')} AS matched_keywords, "
        f"{pick(col.WIDTH, 'BIGINT')} AS width, {pick(col.HEIGHT, 'BIGINT')} AS height, "
        f"{native_sql} AS native FROM read_parquet({file_list})"
    )


def _schema_groups(files: Sequence[str]) -> list[list[str]]:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for path in files:
        schema = pq.read_schema(path)
        groups[tuple((f.name, str(f.type)) for f in schema)].append(str(path))
    return list(groups.values())


def _drop_pool_hash_duplicates(con: duckdb.DuckDBPyConnection, columns: Mapping[str, str]) -> None:
    """Mark every survivor but the first (by rank, uid) of each pool hash value as REASON_POOL_HASH.

    `columns`: {source: native column of the hash}; hex digests are compared case-insensitively,
    blank values never match.
    """
    if not columns:
        return
    cases = " ".join(
        f"WHEN {sql_string(source)} THEN json_extract_string(r.native, {sql_string('$.' + _quote(column))})"
        for source, column in columns.items()
    )
    con.execute(
        f"""
        UPDATE judged SET reason = '{REASON_POOL_HASH}', detail = d.kept
        FROM (
            SELECT uid, first_value(uid) OVER (PARTITION BY hash ORDER BY rank, uid) AS kept
            FROM (
                SELECT j.uid, k.rank, lower(trim(CASE r.source {cases} END)) AS hash
                FROM judged j JOIN rows r ON j.uid = r.uid JOIN ranks k ON j.uid = k.uid
                WHERE j.reason IS NULL
            )
            WHERE hash IS NOT NULL AND hash <> ''
        ) AS d
        WHERE judged.uid = d.uid AND d.uid <> d.kept
        """
    )


def filter_and_dedup_urls(
    metadata: Sequence[str],
    parts: Sequence[str],
    stats: str,
    drops: str,
    settings: UrlFilterSettings,
    threads: int,
    memory_limit: str | None,
) -> list[StageStats]:
    """Drop unsafe URLs and every copy of a URL but the one the priority rule keeps; split into parts.

    `parts` are the output files in part order: a row goes to `parts[host_part(host, uid, len(parts),
    settings.parts_per_host)]`; `settings`: rs5m.pub11.settings.UrlFilterSettings.
    """
    con = duck.connect(threads, memory_limit)
    files = [str(p) for p in metadata if pq.read_metadata(p).num_rows > 0]
    if files:
        union = " UNION ALL ".join(_select_for(con, group) for group in _schema_groups(files))
        con.execute(f"CREATE TEMP TABLE rows AS {union}")
    else:
        con.register("empty_rows", OUTPUT_SCHEMA.empty_table())
        con.execute("CREATE TEMP TABLE rows AS SELECT * FROM empty_rows")

    # Each distinct URL is parsed once; each row gets its rank and part.
    distinct_urls = [u for (u,) in con.execute("SELECT DISTINCT url FROM rows WHERE url IS NOT NULL").fetchall()]
    networks = allowed_networks(settings.allowed_networks)
    url_info = pa.table(
        {
            "url": pa.array(distinct_urls, pa.string()),
            "url_key": pa.array([normalise_url(u) for u in distinct_urls], pa.string()),
            "unsafe": pa.array(
                [check_url(u, networks, settings.blocked_suffixes, settings.max_length) for u in distinct_urls],
                pa.string(),
            ),
        }
    )
    ids = con.sql("SELECT uid, source, url FROM rows").to_arrow_table()
    uids = ids.column("uid").to_pylist()
    host_of = {}
    hosts = [host_of.setdefault(u, url_host(u)) if u is not None else "" for u in ids.column("url").to_pylist()]
    ranks = pa.table(
        {
            "uid": pa.array(uids, pa.string()),
            "rank": pa.array(priority_ranks(ids.column("source").to_pylist(), uids), pa.uint64()),
            "part": pa.array(
                [host_part(h, u, len(parts), settings.parts_per_host) for h, u in zip(hosts, uids)], pa.int32()
            ),
        }
    )
    con.register("url_info", url_info)
    con.register("ranks", ranks)
    con.execute(
        """
        CREATE TEMP TABLE judged AS
        WITH classified AS (
            SELECT r.uid, r.source, i.url_key, CASE WHEN i.url IS NULL THEN 'bad_url' ELSE i.unsafe END AS unsafe, k.rank, k.part
            FROM rows r LEFT JOIN url_info i ON r.url = i.url JOIN ranks k ON r.uid = k.uid
        )
        SELECT uid, source, part, unsafe AS reason, CAST(NULL AS VARCHAR) AS detail
        FROM classified WHERE unsafe IS NOT NULL
        UNION ALL
        SELECT uid, source, part,
               CASE WHEN uid = kept THEN NULL ELSE 'duplicate_url' END AS reason,
               CASE WHEN uid = kept THEN NULL ELSE kept END AS detail
        FROM (SELECT *, first_value(uid) OVER (PARTITION BY url_key ORDER BY rank, uid) AS kept
              FROM classified WHERE unsafe IS NULL)
        """
    )
    for columns in (settings.sha256_columns, settings.phash_columns):
        _drop_pool_hash_duplicates(con, columns)
    n_rows = con.execute("SELECT count(*) FROM rows").fetchall()[0][0]
    n_judged = con.execute("SELECT count(*) FROM judged").fetchall()[0][0]
    if n_rows != n_judged:
        raise RuntimeError(f"URL filter judged {n_judged} of {n_rows} rows (duplicate uids in the input?)")

    names = ", ".join(f"r.{_quote(n)}" for n in OUTPUT_SCHEMA.names)
    for index, path in enumerate(parts):
        table = con.sql(
            f"SELECT {names} FROM rows r JOIN judged j ON r.uid = j.uid "
            f"WHERE j.reason IS NULL AND j.part = {index} ORDER BY r.uid"
        ).to_arrow_table()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.cast(OUTPUT_SCHEMA), path)

    drop_rows = con.sql(
        f"SELECT uid, source, '{STAGE}' AS stage, reason, detail FROM judged WHERE reason IS NOT NULL ORDER BY uid"
    ).to_arrow_table()
    write_drops(drops, drop_rows)

    ledger = Ledger(STAGE)  # the drop records are written above, straight from DuckDB
    for source, reason, count in con.execute(
        "SELECT source, reason, count(*) FROM judged GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        if reason is None:
            ledger.keep(source, count)
        else:
            ledger.drop_count(source, reason, count)
    result = write_stats(stats, ledger.entries())
    for entry in result:
        log.info("%s %s: %d in, %d kept, dropped %s", STAGE, entry.source, entry.rows_in, entry.kept, entry.dropped)
    return result
