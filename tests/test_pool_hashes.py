"""Pool hashes (sources.<name>.columns.sha256 / .phash): duplicates dropped before download as
`duplicate_pool_hash`, other bytes than the pool's sha256 dropped after it as `hash_mismatch`, and the
funnel adds up. The download runs inside a sealed network namespace (tests/sealed.py) against a
loopback server (tests/pool_hash_scenario.py)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from sealed import run_sealed

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool_hashes")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS.parent / "workflow"), str(TESTS)]),
        NO_ALBUMENTATIONS_UPDATE="1",
    )
    result = run_sealed(
        [sys.executable, str(TESTS / "pool_hash_scenario.py"), str(folder / "run")],
        folder / "namespace",
        {"www.rs5m.test": "127.0.0.1"},
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads((folder / "run" / "result.json").read_text())


def test_duplicate_pool_hashes_are_dropped_before_any_request(pool_run):
    url_of = pool_run["url_of"]
    pool = [d for d in pool_run["drops"] if d["reason"] == "duplicate_pool_hash"]
    assert all(d["stage"] == "url_filter" for d in pool)
    # sha256 (a, b: same digest in other letter case) and COYO's phash (e, f)
    pairs = sorted(tuple(sorted((url_of[d["uid"]], url_of[d["detail"]]))) for d in pool)
    assert pairs == [("a.jpg", "b.jpg"), ("e.jpg", "f.jpg")]
    dropped_urls = {url_of[d["uid"]] for d in pool}
    assert not dropped_urls & {r.lstrip("/") for r in pool_run["requests"]}
    assert {"/c.jpg", "/d.jpg", "/g.jpg"} <= set(pool_run["requests"])


def test_wrong_sha256_is_a_hash_mismatch_and_a_missing_one_is_not_checked(pool_run):
    url_of = pool_run["url_of"]
    download = [d for d in pool_run["drops"] if d["stage"] == "download"]
    assert [(url_of[d["uid"]], d["reason"]) for d in download] == [("c.jpg", "hash_mismatch")]


def test_funnel_adds_up_with_pool_hash_columns(pool_run):
    assert pool_run["problems"] == []
    rows = {row["source"]: row for row in pool_run["funnel"]}
    assert [r["source"] for r in pool_run["funnel"]] == ["coyo700m", "commonpool", "total"]
    expected = {"commonpool": (4, 1, 1, 2), "coyo700m": (3, 1, 0, 2)}
    for source, (after, pool, failed, downloaded) in expected.items():
        row = rows[source]
        assert (
            row["after_keyword_filter"],
            row["pool_hash_duplicates"],
            row["download_failed"],
            row["downloaded"],
        ) == (
            after,
            pool,
            failed,
            downloaded,
        )
        lost = row["url_duplicates"] + row["pool_hash_duplicates"] + row["blocked_urls"] + row["download_failed"]
        assert row["after_keyword_filter"] - lost == row["downloaded"]
    assert Counter(d["reason"] for d in pool_run["drops"]) == {"duplicate_pool_hash": 2, "hash_mismatch": 1}
