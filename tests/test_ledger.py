import json

import pyarrow.parquet as pq
import pytest

from rs5m.assemble.funnel import build_funnel, write_funnel
from rs5m.ledger import Ledger, LedgerError, StageStats, merge_stats, read_stats, write_stats


def test_stage_stats_must_add_up(tmp_path):
    good = StageStats("keyword_filter", "laion2b", rows_in=10, kept=3, dropped={"no_keyword_match": 7})
    write_stats(tmp_path / "a.stats.json", [good])
    assert read_stats([tmp_path / "a.stats.json"]) == [good]
    with pytest.raises(LedgerError, match="rows_in=10"):
        write_stats(
            tmp_path / "b.stats.json", [StageStats("keyword_filter", "laion2b", 10, 3, {"no_keyword_match": 6})]
        )
    (tmp_path / "c.stats.json").write_text(
        json.dumps({"stage": "x", "source": "s", "rows_in": 2, "kept": 2, "dropped": {"a": 1}})
    )
    with pytest.raises(LedgerError):
        read_stats([tmp_path / "c.stats.json"])


def test_merge_sums_per_stage_and_source():
    merged = merge_stats(
        [
            StageStats("download", "wit", 5, 4, {"download_failed": 1}),
            StageStats("download", "wit", 3, 1, {"download_failed": 1, "blocked": 1}),
            StageStats("download", "sbu", 2, 2, {}),
        ]
    )
    assert merged[("download", "wit")] == StageStats("download", "wit", 8, 5, {"download_failed": 2, "blocked": 1})
    assert merged[("download", "sbu")].kept == 2


def chain(source, n_in, kw, urldup, blocked, failed, invalid, dups, outliers, overlap=0):
    after_url = kw - urldup - blocked
    downloaded = after_url - failed
    remain = downloaded - invalid - dups - outliers
    return [
        StageStats("keyword_filter", source, n_in, kw, {"no_keyword_match": n_in - kw}),
        StageStats("url_filter", source, kw, after_url, {"duplicate_url": urldup, "blocked_url": blocked}),
        StageStats("download", source, after_url, downloaded, {"download_failed": failed}),
        StageStats("invalid", source, downloaded, downloaded - invalid, {"invalid_decode": invalid}),
        StageStats("image_dedup", source, downloaded - invalid, downloaded - invalid - dups, {"duplicate_image": dups}),
        StageStats("outliers", source, downloaded - invalid - dups, remain, {"low_clip_score": outliers}),
        StageStats("decontamination", source, remain, remain - overlap, {"eval_overlap": overlap}),
    ]


def test_funnel_columns_and_arithmetic(tmp_path):
    stats = chain("laion2b", 1000, 100, 10, 2, 8, 1, 5, 9, 3) + chain("vg", 50, 6, 0, 0, 0, 0, 0, 4)
    funnel = build_funnel(stats)
    assert funnel.consistent
    laion, vg, total = funnel.rows
    assert (
        laion["after_keyword_filter"],
        laion["downloaded"],
        laion["invalid"],
        laion["duplicates"],
        laion["outliers"],
        laion["eval_overlap"],
        laion["remain"],
    ) == (100, 80, 1, 5, 9, 3, 62)
    assert (laion["url_duplicates"], laion["blocked_urls"], laion["download_failed"]) == (10, 2, 8)
    assert vg["remain"] == 2 and total["remain"] == 64 and total["downloaded"] == 86 and total["eval_overlap"] == 3
    for row in funnel.rows:
        lost = row["invalid"] + row["duplicates"] + row["outliers"] + row["eval_overlap"]
        assert row["downloaded"] - lost == row["remain"]
    for path in ("f.csv", "f.md", "f.json"):
        (tmp_path / path).unlink(missing_ok=True)
    files = []
    for i, s in enumerate(stats):
        write_stats(tmp_path / f"{i}.stats.json", [s])
        files.append(tmp_path / f"{i}.stats.json")
    write_funnel(files, tmp_path / "f.csv", tmp_path / "f.md", tmp_path / "f.json")
    assert "| laion2b | 1,000 | 100 | 10 | 0 | 2 | 8 | 80 | 1 | 5 | 9 | 3 | 62 |" in (tmp_path / "f.md").read_text()
    assert json.loads((tmp_path / "f.json").read_text())["consistent"] is True


def test_funnel_reports_a_broken_chain(tmp_path):
    stats = chain("wit", 100, 20, 1, 0, 1, 0, 0, 0)
    stats[2] = StageStats("download", "wit", 18, 17, {"download_failed": 1})  # 19 were handed over
    funnel = build_funnel(stats)
    assert not funnel.consistent
    assert any("download has rows_in=18 but url_filter kept 19" in p for p in funnel.problems)


def test_funnel_with_only_the_first_stage():
    funnel = build_funnel([StageStats("keyword_filter", "cc3m", 30, 16, {"no_keyword_match": 14})])
    row = funnel.rows[0]
    assert (row["after_keyword_filter"], row["remain"], row["downloaded"]) == (16, 16, None)


def test_ledger_absorbs_a_per_file_ledger(tmp_path):
    job, first, second = Ledger("keyword_filter"), Ledger("keyword_filter"), Ledger("keyword_filter")
    first.keep("wit", 2)
    first.drop("u1", "wit", "null_url", "")
    second.drop_count("wit", "no_keyword_match", 5)
    second.drop("u2", "wit", "null_caption", "x")
    job.absorb(first)
    job.absorb(second)
    (entry,) = job.write(tmp_path / "j.stats.json", tmp_path / "j.drops.parquet")
    assert (entry.rows_in, entry.kept, entry.dropped) == (
        9,
        2,
        {"null_url": 1, "no_keyword_match": 5, "null_caption": 1},
    )
    assert [r["uid"] for r in pq.read_table(tmp_path / "j.drops.parquet").to_pylist()] == ["u1", "u2"]
    with pytest.raises(ValueError, match="cannot add"):
        job.absorb(Ledger("download"))


def test_funnel_rows_are_the_keyword_filter_sources_and_rs3_stays_out():
    stats = chain("laion2b", 100, 10, 1, 0, 1, 0, 0, 0) + chain("commonpool", 50, 6, 0, 0, 0, 0, 0, 0)
    stats.append(StageStats("decontamination", "fmow", 5, 5, {}))  # RS3 shares the stage
    funnel = build_funnel(stats)
    assert [row["source"] for row in funnel.rows] == ["laion2b", "commonpool", "total"]
    assert funnel.consistent and funnel.rows[-1]["remain"] == funnel.rows[0]["remain"] + funnel.rows[1]["remain"]
