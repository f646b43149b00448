"""Readers for the eleven native formats and the keyword-filter job, on files the tests write."""

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from schema_defaults import keyword_filter_args, url_filter_args

from rs5m.columns import make_uid
from rs5m.ledger import read_stats
from rs5m.pub11.keyword_filter import filter_chunk
from rs5m.pub11.sources import WIT_COLUMNS, YFCC100M_COLUMNS, SourceFormatError, plan_chunks, resolve_files

KEYWORDS = str(REPO / "config" / "keywords.txt")
RS = "Satellite image of a harbour"
OTHER = "a cat on a sofa"


def run(tmp_path, source, files, **kwargs):
    out = tmp_path / "out" / f"{source}.parquet"
    stats = filter_chunk(source, [str(f) for f in files], str(out), KEYWORDS, **keyword_filter_args(**kwargs))
    kept = pq.read_table(out)
    drops = pq.read_table(out.with_name(f"{source}.drops.parquet")).to_pylist()
    accounts = json.loads(out.with_name(f"{source}.files.json").read_text())
    assert stats.rows_in == stats.kept + sum(stats.dropped.values())
    return stats, kept, drops, accounts


def test_laion_parquet_keeps_matches_and_native_columns(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(
        pa.table(
            {
                "URL": ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"],
                "TEXT": [RS, OTHER, "LANDSAT and usgs"],
                "WIDTH": [10, 20, None],
                "HEIGHT": [11, 21, None],
                "punsafe": [0.1, 0.2, 0.3],
            }
        ),
        path,
    )
    stats, kept, _, _ = run(tmp_path, "laion2b", [path])
    assert (stats.rows_in, stats.kept, stats.dropped) == (3, 2, {"no_keyword_match": 1})
    rows = kept.to_pylist()
    assert [r["url"] for r in rows] == ["http://a/1.jpg", "http://a/3.jpg"]
    assert rows[0]["uid"] == make_uid("laion2b", "http://a/1.jpg", file="part.parquet")
    assert rows[1]["matched_keywords"] == ["usgs", "landsat"]  # file order of the patterns
    assert rows[0]["width"] == 10 and rows[1]["width"] is None
    assert rows[0]["src_punsafe"] == pytest.approx(0.1)


def test_laioncoco_matches_blip_captions_and_all_captions(tmp_path):
    path = tmp_path / "coco.parquet"
    pq.write_table(
        pa.table(
            {
                "URL": ["http://a/1", "http://a/2", "http://a/3"],
                "TEXT": [OTHER, OTHER, OTHER],
                "top_caption": ["an aerial view of a city", OTHER, OTHER],
                "all_captions": [[OTHER], ["x", "Google Earth screenshot"], [OTHER]],
            }
        ),
        path,
    )
    stats, kept, _, _ = run(tmp_path, "laioncoco", [path])
    rows = kept.to_pylist()
    assert [r["caption"] for r in rows] == ["an aerial view of a city", "Google Earth screenshot"]
    assert rows[1]["captions"] == [OTHER, OTHER, "x", "Google Earth screenshot"]


def test_headerless_tsvs_in_both_column_orders_and_broken_lines(tmp_path):
    cc12 = tmp_path / "cc12m.tsv"
    cc12.write_bytes(
        f"http://a/1\t{RS}\nhttp://a/2\t{OTHER}\n".encode()
        + b"http://a/3\tsatellite image \xff bad utf-8\n"
        + b"no tab on this line\n"
        + 'http://a/4\t"quoted" aerial view\n'.encode()
    )
    stats, kept, drops, _ = run(tmp_path, "cc12m", [cc12])
    assert stats.rows_in == 5 and stats.kept == 2
    assert stats.dropped == {"no_keyword_match": 1, "undecodable_row": 2}
    assert kept.column("caption").to_pylist() == [RS, '"quoted" aerial view']
    assert sorted(d["detail"].split(":")[0] for d in drops) == ["line 3", "line 4"]

    cc3 = tmp_path / "cc3m.tsv"
    cc3.write_text(f"{RS}\thttp://b/1\n{OTHER}\thttp://b/2\n")
    stats, kept, _, _ = run(tmp_path, "cc3m", [cc3])
    assert kept.column("url").to_pylist() == ["http://b/1"]


def test_wit_gz_tsv_english_rows_only(tmp_path, shared_fixtures=None):
    header = list(WIT_COLUMNS)
    rows = [
        ["en", "p", "http://w/1", "t", "", "", "", RS, "", "image/jpeg", "10", "20", "true", "true", "false", "", ""],
        ["fr", "p", "http://w/2", "t", "", "", RS, "", "", "image/jpeg", "10", "20", "true", "true", "false", "", ""],
        [
            "en",
            "p",
            "http://w/3",
            "t",
            "",
            "",
            OTHER,
            "",
            "",
            "image/jpeg",
            "10",
            "20",
            "true",
            "true",
            "false",
            "",
            "",
        ],
    ]
    path = tmp_path / "wit.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    stats, kept, _, _ = run(tmp_path, "wit", [path])
    assert stats.dropped == {"not_english": 1, "no_keyword_match": 1}
    assert kept.to_pylist()[0]["width"] == 20 and kept.to_pylist()[0]["height"] == 10


def test_yfcc_records_are_form_decoded(tmp_path):
    values = {c: "" for c in YFCC100M_COLUMNS}
    values.update(
        title="Aerial+view+of+Oslo",
        description="50%25+%2B+more",
        download_url="http://y/1.jpg",
        latitude="59.9",
        longitude="10.7",
        date_taken="2012-06-01 10:00:00.0",
    )
    path = tmp_path / "yfcc.tsv"
    path.write_text("\t".join(values[c] for c in YFCC100M_COLUMNS) + "\n")
    _, kept, _, _ = run(tmp_path, "yfcc15m", [path])
    row = kept.to_pylist()[0]
    assert row["caption"] == "Aerial view of Oslo"
    assert row["captions"] == ["Aerial view of Oslo", "50% + more"]
    assert row["src_latitude"] == "59.9"


def test_json_sources(tmp_path):
    redcaps = tmp_path / "earthporn_2020.json"
    redcaps.write_text(
        json.dumps(
            {
                "info": {},
                "annotations": [
                    {
                        "image_id": "a",
                        "author": "x",
                        "url": "http://r/1",
                        "raw_caption": "Aerial View",
                        "caption": "aerial view",
                        "subreddit": "earthporn",
                        "score": 1,
                        "created_utc": 1.6e9,
                        "permalink": "/r/1",
                        "crosspost_parents": None,
                    },
                    {
                        "image_id": "b",
                        "author": "x",
                        "url": "http://r/2",
                        "raw_caption": "Dog",
                        "caption": "dog",
                        "subreddit": "earthporn",
                        "score": 1,
                        "created_utc": 1.6e9,
                        "permalink": "/r/2",
                        "crosspost_parents": None,
                    },
                ],
            }
        )
    )
    stats, kept, _, _ = run(tmp_path, "redcaps", [redcaps])
    assert kept.to_pylist()[0]["src_created_utc"] == pytest.approx(1.6e9)

    sbu = tmp_path / "sbu.json"
    sbu.write_text(
        json.dumps(
            {
                "image_urls": ["http://s/1", "http://s/2"],
                "captions": [OTHER, "space view of Earth"],
                "user_ids": ["u1", "u2"],
            }
        )
    )
    _, kept, _, _ = run(tmp_path, "sbu", [sbu])
    assert kept.to_pylist()[0]["url"] == "http://s/2" and kept.to_pylist()[0]["src_user_ids"] == "u2"

    vg = tmp_path / "vg"
    vg.mkdir()
    (vg / "image_data.json").write_text(
        json.dumps(
            [
                {"image_id": 1, "url": "http://v/1", "width": 8, "height": 6, "coco_id": None, "flickr_id": 3},
                {"image_id": 2, "url": "http://v/2", "width": 8, "height": 6, "coco_id": None, "flickr_id": 4},
            ]
        )
    )
    (vg / "region_descriptions.json").write_text(
        json.dumps(
            [
                {
                    "id": 1,
                    "regions": [
                        {"region_id": 1, "image_id": 1, "phrase": "a tree", "x": 0, "y": 0, "width": 1, "height": 1},
                        {
                            "region_id": 2,
                            "image_id": 1,
                            "phrase": "aerial photo of fields",
                            "x": 0,
                            "y": 0,
                            "width": 1,
                            "height": 1,
                        },
                    ],
                },
                {
                    "id": 2,
                    "regions": [
                        {"region_id": 3, "image_id": 2, "phrase": "a dog", "x": 0, "y": 0, "width": 1, "height": 1}
                    ],
                },
            ]
        )
    )
    _, kept, _, _ = run(tmp_path, "vg", [vg / "image_data.json"])
    row = kept.to_pylist()[0]
    assert (row["url"], row["caption"], row["width"]) == ("http://v/1", "aerial photo of fields", 8)
    assert row["captions"] == ["a tree", "aerial photo of fields"]


def test_bad_rows_get_reasons_and_nothing_is_lost(tmp_path):
    path = tmp_path / "bad.parquet"
    huge = "aerial view " * 100_000  # 1.2 MB caption
    pq.write_table(
        pa.table(
            {
                "URL": [
                    None,
                    " ",
                    "ftp://x/1",
                    "javascript:alert(1)",
                    "http://a/1",
                    "http://a/2",
                    "HTTPS://A/3",
                    "http://a/1",
                ],
                "TEXT": [RS, RS, RS, RS, None, huge, RS, "aerial view again"],
            }
        ),
        path,
    )
    stats, kept, drops, _ = run(tmp_path, "laion2b", [path])
    assert stats.dropped == {"null_url": 2, "bad_url_scheme": 2, "null_caption": 1, "caption_too_long": 1}
    assert stats.kept == 2 and stats.rows_in == 8
    assert sorted(d["reason"] for d in drops) == sorted(
        ["null_url"] * 2 + ["bad_url_scheme"] * 2 + ["null_caption", "caption_too_long"]
    )
    uids = kept.column("uid").to_pylist()
    # The second http://a/1 row is kept with repeat index 1; the first (dropped) one has repeat 0.
    assert uids == [
        make_uid("laion2b", "HTTPS://A/3", file="bad.parquet"),
        make_uid("laion2b", "http://a/1", 1, file="bad.parquet"),
    ]
    assert make_uid("laion2b", "http://a/1", file="bad.parquet") in {d["uid"] for d in drops}
    assert len({d["uid"] for d in drops} | set(uids)) == 8


def test_unreadable_files_are_recorded_and_the_rest_goes_on(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"URL": ["http://a/1"], "TEXT": [RS]}), good)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"link": ["http://a/9"], "TEXT": [RS]}), wrong)
    stats, kept, _, accounts = run(tmp_path, "laion2b", [good, corrupt, empty, wrong])
    assert kept.num_rows == 1 and stats.rows_in == 1
    status = {a["path"].rsplit("/", 1)[-1]: a for a in accounts}
    assert status["good.parquet"]["status"] == "ok"
    assert {status[n]["status"] for n in ("corrupt.parquet", "empty.parquet", "wrong.parquet")} == {"unreadable"}
    assert "URL" in status["wrong.parquet"]["error"] and "link" in status["wrong.parquet"]["error"]

    with pytest.raises(SourceFormatError, match=r"wrong\.parquet.*URL"):
        filter_chunk(
            "laion2b",
            [str(wrong)],
            str(tmp_path / "o2" / "x.parquet"),
            KEYWORDS,
            **keyword_filter_args(on_bad_file="fail"),
        )


def test_empty_tsv_is_a_file_with_no_rows(tmp_path):
    path = tmp_path / "cc12m.tsv"
    path.write_text("")
    stats, kept, _, accounts = run(tmp_path, "cc12m", [path])
    assert (stats.rows_in, kept.num_rows, accounts[0]["status"]) == (0, 0, "ok")


def test_stats_file_reads_back(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"URL": ["http://a/1", "http://a/2"], "TEXT": [RS, OTHER]}), path)
    run(tmp_path, "laion2b", [path])
    (entry,) = read_stats([tmp_path / "out" / "laion2b.stats.json"])
    assert (entry.stage, entry.rows_in, entry.kept) == ("keyword_filter", 2, 1)


def test_reruns_give_identical_uids(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"URL": ["http://a/1", "http://a/1", "http://a/2"], "TEXT": [RS, RS, RS]}), path)
    _, first, _, _ = run(tmp_path, "laion2b", [path])
    shutil.rmtree(tmp_path / "out")
    _, second, _, _ = run(tmp_path, "laion2b", [path])
    assert first.column("uid").to_pylist() == second.column("uid").to_pylist()
    assert len(set(first.column("uid").to_pylist())) == 3


def test_resolve_files_and_chunks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("b.parquet", "a.parquet", "c.txt"):
        (tmp_path / name).write_text("x")
    assert resolve_files(["*.parquet", "a.parquet"]) == ["a.parquet", "b.parquet"]
    assert resolve_files(["missing.parquet"]) == []
    assert resolve_files(["gen/x.parquet"], produced_prefixes=("gen",)) == ["gen/x.parquet"]
    assert plan_chunks(["f1", "f2", "f3"], 2) == {"00000": ["f1", "f2"], "00001": ["f3"]}
    with pytest.raises(ValueError, match="share the name 'part-0.parquet'"):
        plan_chunks(["a/part-0.parquet", "b/part-0.parquet"], 1)


def test_a_url_repeated_across_files_and_chunks_gets_distinct_uids_and_one_survivor(tmp_path):
    """LAION's parts repeat URLs: each copy keeps its own uid; the URL dedup keeps one copy and
    names the others `duplicate_url`, whichever chunks they were read in."""
    from rs5m.pub11.url_filter import filter_and_dedup_urls

    files = []
    for i in range(3):
        files.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(
            pa.table(
                {
                    "URL": [
                        "http://img.example.org/same.jpg",
                        f"http://img.example.org/{i}.jpg",
                        "http://img.example.org/same.jpg",
                    ],
                    "TEXT": [RS] * 3,
                }
            ),
            files[-1],
        )
    chunks = [run(tmp_path / "c0", "laion2b", files[:2])[1], run(tmp_path / "c1", "laion2b", files[2:])[1]]
    uids = [u for chunk in chunks for u in chunk.column("uid").to_pylist()]
    assert len(uids) == 9 == len(set(uids))
    assert uids[:3] == [
        make_uid("laion2b", "http://img.example.org/same.jpg", file="part-0.parquet"),
        make_uid("laion2b", "http://img.example.org/0.jpg", file="part-0.parquet"),
        make_uid("laion2b", "http://img.example.org/same.jpg", 1, file="part-0.parquet"),
    ]
    metadata = [tmp_path / "c0/out/laion2b.parquet", tmp_path / "c1/out/laion2b.parquet"]
    parts = [tmp_path / f"u{i}.parquet" for i in range(2)]
    stats = filter_and_dedup_urls(
        [str(m) for m in metadata],
        [str(p) for p in parts],
        str(tmp_path / "u.stats.json"),
        str(tmp_path / "u.drops.parquet"),
        **url_filter_args(),
    )
    kept = [u for p in parts for u in pq.read_table(p).column("uid").to_pylist()]
    drops = pq.read_table(tmp_path / "u.drops.parquet").to_pylist()
    assert len(kept) == 4 and {d["reason"] for d in drops} == {"duplicate_url"} and len(drops) == 5
    assert sorted(kept + [d["uid"] for d in drops]) == sorted(uids)
    assert sum(s.kept for s in stats) == 4


def test_shared_fixtures_read_as_their_formats(tmp_path, shared_fixtures):
    stats, kept, _, _ = run(tmp_path, "laion400m", [shared_fixtures / "metadata/img2dataset/test_1000.parquet"])
    assert stats.rows_in == 1000 and stats.kept == stats.rows_in - stats.dropped_total
    src = shared_fixtures / "metadata/wit_tfds_dummy/train-00000-of-00009.tsv"
    stats, _, _, accounts = run(tmp_path, "wit", [src])
    assert accounts[0]["status"] == "ok" and stats.rows_in == 3


def test_url_and_length_checks_apply_to_candidate_rows_only(tmp_path):
    # Only rows that match a pattern or have a blank caption are classified; a broken URL on a row
    # that matches nothing counts as no_keyword_match. Runs of 16 captions are searched at once, so
    # a match spanning two rows ("...aerial" + "view...") must not keep either row.
    texts = [OTHER] * 40
    texts[3], texts[15], texts[16], texts[20], texts[33] = RS, "an aerial", "view of a cat", " \u3000 ", "x " * 40
    urls = [f"http://a/{i}" for i in range(40)]
    urls[5], urls[6], urls[20] = None, "ftp://x/6", None
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"URL": urls, "TEXT": texts}), path)
    stats, kept, drops, _ = run(tmp_path, "laion2b", [path], max_caption_bytes=60)
    assert kept.column("url").to_pylist() == ["http://a/3"]
    assert stats.dropped == {"null_url": 1, "no_keyword_match": 38}
    assert [d["reason"] for d in drops] == ["null_url"]  # the blank caption of row 20, whose URL is null
