"""Every DuckDB connection of the build: threads and memory bounded by the rule that runs it.

A rule declares `threads` and `resources: mem_mb`; its DuckDB gets those threads and a
`memory_limit` of 3/4 of the job's memory (DuckDB spills to disk beyond it), unless the config
names a limit. Without either (a library call from a test or a notebook), DEFAULT_MEMORY_LIMIT
holds: no connection here is left at DuckDB's own default of 80 % of the machine's memory.
"""

from __future__ import annotations

import duckdb

# Share of a job's declared memory that DuckDB may use; the rest is Python, Arrow and the OS.
MEMORY_FRACTION_NUM, MEMORY_FRACTION_DEN = 3, 4
DEFAULT_MEMORY_LIMIT = "1000MB"


def memory_limit_for(mem_mb: int | float) -> str:
    """DuckDB's `memory_limit` for a job of `mem_mb` megabytes (3/4 of it)."""
    return f"{max(1, int(mem_mb) * MEMORY_FRACTION_NUM // MEMORY_FRACTION_DEN)}MB"


def connect(
    threads: int = 1, memory_limit: str | None = None, memory_mb: int | None = None, database: str = ":memory:"
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection limited to `threads` and to `memory_limit` (a DuckDB size such as
    '3000MB'); without a limit, 3/4 of `memory_mb`; without either, DEFAULT_MEMORY_LIMIT."""
    if not memory_limit:
        memory_limit = memory_limit_for(memory_mb) if memory_mb else DEFAULT_MEMORY_LIMIT
    con = duckdb.connect(database)
    con.execute(f"SET threads = {max(1, int(threads))}")
    con.execute("SET memory_limit = ?", [str(memory_limit)])
    return con
