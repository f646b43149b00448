"""Every DuckDB connection is bounded by its rule's memory and threads, through rs5m.duck (issue 14, item 6)."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, planned_jobs, snakemake
from schema_defaults import keyword_filter_args, pub11_metacaption_args, schema_defaults, url_filter_args

from rs5m import duck
from rs5m.pub11.settings import DedupSettings

MIB = 1024 * 1024


def _settings(con):
    return con.sql("SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()[0]


def _bytes(setting: str) -> float:
    number, unit = setting.split()
    return float(number) * {"KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}[unit]


def test_connect_bounds_memory_and_threads():
    limit, threads = _settings(duck.connect(3, memory_mb=4000))
    assert threads == 3 and abs(_bytes(limit) / 3000e6 - 1) < 0.05  # 3/4 of the job's memory
    limit, threads = _settings(duck.connect(2, "500MB"))
    assert threads == 2 and abs(_bytes(limit) / 500e6 - 1) < 0.05
    limit, _ = _settings(duck.connect())
    assert abs(_bytes(limit) / 1000e6 - 1) < 0.05  # never DuckDB's 80 % of the machine


def test_no_module_connects_to_duckdb_but_duck():
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "workflow").rglob("*.py"))
        if path.name != "duck.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"duckdb\.connect\(", line)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "module, call",
    [
        ("pub11.keyword_filter", "filter_chunk"),
        ("pub11.image_dedup", "dedup_images"),
        ("pub11.url_filter", "filter_and_dedup_urls"),
        ("pub11.pub11_metacaption", "pub11_metacaptions"),
    ],
)
def test_each_stage_passes_its_limit(tmp_path, monkeypatch, module, call):
    """The stage functions hand the rule's limit and threads to the one helper."""
    import importlib

    seen = []
    real = duck.connect

    def spy(threads=1, memory_limit=None, memory_mb=None, **kwargs):
        seen.append((threads, memory_limit))
        return real(threads, memory_limit, memory_mb, **kwargs)

    monkeypatch.setattr(duck, "connect", spy)
    mod = importlib.import_module(f"rs5m.{module}")
    function = getattr(mod, call)
    if call == "filter_chunk":
        src = tmp_path / "a.tsv"
        src.write_text("http://a.invalid/1.jpg\tsatellite image of a port\n")
        function(
            "cc12m",
            [str(src)],
            str(tmp_path / "out.parquet"),
            str(REPO / "config/keywords.txt"),
            **keyword_filter_args(threads=2, memory_limit="700MB"),
        )
    elif call == "dedup_images":
        with pytest.raises(Exception, match="needs at least one file"):  # no URL parts: after connecting
            function(
                [],
                [],
                kept=tmp_path / "k.parquet",
                stats=tmp_path / "k.stats.json",
                drops=tmp_path / "k.drops.parquet",
                pairs=tmp_path / "k.pairs.parquet",
                settings=DedupSettings.from_config(schema_defaults()),
                threads=2,
                memory_limit="700MB",
            )
    elif call == "filter_and_dedup_urls":
        src = tmp_path / "m.parquet"
        pq.write_table(
            pa.table(
                {"uid": ["a"], "source": ["cc12m"], "url": ["http://a.invalid/1.jpg"], "caption": ["satellite image"]}
            ),
            src,
        )
        try:
            function(
                [str(src)],
                [str(tmp_path / "p0.parquet")],
                stats=tmp_path / "u.stats.json",
                drops=tmp_path / "u.drops.parquet",
                **url_filter_args(threads=2, memory_limit="700MB"),
            )
        except Exception:  # noqa: BLE001 - a table of too few columns may fail after connecting; the connection is what counts
            pass
    else:
        final = tmp_path / "final.parquet"
        pq.write_table(
            pa.table(
                {
                    "uid": pa.array([], pa.string()),
                    "source": pa.array([], pa.string()),
                    "url": pa.array([], pa.string()),
                }
            ),
            final,
        )
        part = tmp_path / "u.parquet"
        pq.write_table(
            pa.table(
                {
                    "uid": pa.array([], pa.string()),
                    "source": pa.array([], pa.string()),
                    "native": pa.array([], pa.string()),
                }
            ),
            part,
        )
        function(final, [str(part)], tmp_path / "m.parquet", **pub11_metacaption_args(threads=2, memory_limit="700MB"))
    assert seen and all(s == (2, "700MB") for s in seen)


def test_every_duckdb_rule_declares_memory(tmp_path):
    """The rules whose jobs open DuckDB declare mem_mb, which their limit follows."""
    result = snakemake(tmp_path, "-n", "--cores", "2")
    assert planned_jobs(result.stdout)["keyword_filter"] > 0
    for rule in ("keyword_filter", "url_filter", "image_dedup", "pub11_metacaption"):
        blocks = [b for b in result.stdout.split("\n\n") if re.search(rf"rule {rule}:", b)]
        assert blocks and all("mem_mb=" in b for b in blocks), rule


def test_json_sources_read_within_a_small_memory_limit(tmp_path):
    """read_json's buffer follows the file's size, so a bounded connection still reads JSON sources."""
    import json

    from rs5m.pub11.keyword_filter import filter_chunk

    path = tmp_path / "earthporn_2020.json"
    path.write_text(
        json.dumps(
            {
                "info": {},
                "annotations": [
                    {
                        "image_id": "a",
                        "author": "x",
                        "url": "http://r.invalid/1.jpg",
                        "raw_caption": "Aerial view of a bay",
                        "caption": "aerial view of a bay",
                        "subreddit": "earthporn",
                        "score": 1,
                        "created_utc": 1.6e9,
                        "permalink": "/r/1",
                        "crosspost_parents": None,
                    }
                ],
            }
        )
    )
    stats = filter_chunk(
        "redcaps",
        [str(path)],
        str(tmp_path / "out.parquet"),
        str(REPO / "config/keywords.txt"),
        **keyword_filter_args(memory_limit="200MB"),
    )
    assert stats.kept == 1 and pq.read_table(tmp_path / "out.parquet").num_rows == 1
