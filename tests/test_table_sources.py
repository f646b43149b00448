"""Table sources with a column mapping and the pool presets (datacomp, relaion, pd12m, dfn), on files the tests write
in each pool's public column layout."""

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from schema_defaults import keyword_filter_args

from rs5m.columns import make_uid
from rs5m.pub11.keyword_filter import filter_chunk
from rs5m.pub11.sources import INDEX_DTYPE, SourceFormatError, build_format, in_index, pool_hash_columns, uid_pairs

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
    for account in accounts:
        assert account["rows_in"] == account["kept"] + sum(account["dropped"].values())
    return stats, kept, drops, accounts


def _hex(i: int) -> str:
    return f"{i:032x}"


def datacomp_table(uids, urls, texts, l14, sha) -> pa.Table:
    """CommonPool metadata parquet: uid, url, text, original_width, original_height, the two CLIP
    scores, face_bboxes, sha256."""
    n = len(uids)
    return pa.table(
        {
            "uid": pa.array(uids, pa.string()),
            "url": urls,
            "text": texts,
            "original_width": pa.array([640] * n, pa.int64()),
            "original_height": pa.array([480] * n, pa.int64()),
            "clip_b32_similarity_score": pa.array([0.3] * n, pa.float32()),
            "clip_l14_similarity_score": pa.array(l14, pa.float32()),
            "face_bboxes": pa.array([[] for _ in range(n)], pa.list_(pa.list_(pa.float64()))),
            "sha256": sha,
        }
    )


def test_datacomp_preset_with_a_clip_filter(tmp_path):
    path = tmp_path / "0000000.parquet"
    pq.write_table(
        datacomp_table(
            [_hex(1), _hex(2), _hex(3), _hex(4), _hex(5)],
            ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg", "ftp://a/4.jpg", "http://a/5.jpg"],
            [RS, RS, OTHER, "aerial view of a port", "aerial photo, blurry"],
            [0.35, 0.1, 0.4, 0.5, None],
            ["a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64],
        ),
        path,
    )
    stats, kept, drops, accounts = run(
        tmp_path, "commonpool", [path], format="datacomp", filters=["clip_l14_similarity_score >= 0.3"]
    )
    # 2 and 5 fail the filter (5: no score); 3 matches no keyword; 4 has a bad scheme.
    assert (stats.rows_in, stats.kept) == (5, 1)
    assert stats.dropped == {"source_filter": 2, "no_keyword_match": 1, "bad_url_scheme": 1}
    row = kept.to_pylist()[0]
    assert row["url"] == "http://a/1.jpg" and row["width"] == 640 and row["height"] == 480
    assert row["uid"] == make_uid("commonpool", "http://a/1.jpg", file=path.name)
    assert row["src_sha256"] == "a" * 64 and row["src_uid"] == _hex(1)
    assert [(d["reason"], d["detail"]) for d in drops] == [("bad_url_scheme", "ftp://a/4.jpg")]
    assert accounts[0]["dropped"]["source_filter"] == 2


def test_relaion_and_pd12m_presets(tmp_path):
    relaion = tmp_path / "part-00000.parquet"
    pq.write_table(
        pa.table(
            {
                "URL": ["http://r/1.jpg", "http://r/2.jpg"],
                "TEXT": ["remote sensing of forests", OTHER],
                "WIDTH": [100, 200],
                "HEIGHT": [50, 60],
                "similarity": [0.3, 0.31],
                "hash": [123, 456],
                "punsafe": [0.01, 0.02],
                "pwatermark": [0.1, 0.2],
            }
        ),
        relaion,
    )
    stats, kept, _, _ = run(tmp_path / "r", "relaion2b", [relaion], format="relaion", filters=["punsafe < 0.5"])
    assert (stats.rows_in, stats.kept, stats.dropped) == (2, 1, {"no_keyword_match": 1})
    assert kept.column("width").to_pylist() == [100] and kept.column("src_hash").to_pylist() == [123]

    pd12m = tmp_path / "pd12m.00.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["u1", "u2", "u3"],
                "url": ["https://pd12m.s3/1.jpeg", "https://pd12m.s3/2.jpeg", None],
                "s3_key": ["1.jpeg", "2.jpeg", "3.jpeg"],
                "caption": ["The image shows an aerial view of a river", OTHER, "An aerial photo of fields"],
                "hash": ["0" * 32, "1" * 32, "2" * 32],
                "width": [512, 512, 512],
                "height": [256, 256, 256],
                "mime_type": ["image/jpeg"] * 3,
                "license": ["https://creativecommons.org/publicdomain/zero/1.0/"] * 3,
                "source": ["Met", "Met", "Met"],
            }
        ),
        pd12m,
    )
    stats, kept, drops, _ = run(tmp_path / "p", "pd12m", [pd12m], format="pd12m")
    assert (stats.rows_in, stats.kept, stats.dropped) == (3, 1, {"no_keyword_match": 1, "null_url": 1})
    assert kept.column("src_id").to_pylist() == ["u1"] and kept.column("height").to_pylist() == [256]
    assert [d["reason"] for d in drops] == ["null_url"]


def test_table_format_reads_csv_tsv_and_jsonl_gz_with_several_caption_columns(tmp_path):
    columns = {"url": "image", "caption": ["title", "alt"], "width": "w", "height": None}
    csv = tmp_path / "a.csv"
    csv.write_text(
        'image,title,alt,w,lang\nhttp://c/1.jpg,"Harbour, seen from above",satellite photo,5,en\n'
        "http://c/2.jpg,cat,sofa,6,en\nhttp://c/3.jpg,remote sensing,,7,de\n"
    )
    tsv = tmp_path / "b.tsv.gz"
    with gzip.open(tsv, "wt") as handle:
        handle.write("image\ttitle\talt\tw\tlang\nhttp://t/1.jpg\tearth observation\t\t8\ten\n")
    jsonl = tmp_path / "c.jsonl.gz"
    with gzip.open(jsonl, "wt") as handle:
        for i, (title, lang) in enumerate([("aerial view of a dam", "en"), (OTHER, "en"), (RS, None)]):
            handle.write(
                json.dumps({"image": f"http://j/{i}.jpg", "title": title, "alt": "", "w": 9, "lang": lang}) + "\n"
            )
    stats, kept, _, accounts = run(
        tmp_path, "mine", [csv, tsv, jsonl], format="table", columns=columns, filters=["lang = 'en'"]
    )
    assert stats.rows_in == 7 and stats.kept == 3
    assert stats.dropped == {"source_filter": 2, "no_keyword_match": 2}
    rows = kept.to_pylist()
    assert [r["url"] for r in rows] == ["http://c/1.jpg", "http://t/1.jpg", "http://j/0.jpg"]
    # the caption is the first field that matches; both fields are kept
    assert rows[0]["caption"] == "satellite photo" and rows[0]["captions"] == [
        "Harbour, seen from above",
        "satellite photo",
    ]
    assert rows[0]["matched_keywords"] == ["satellite photo"] and rows[0]["width"] == 5
    assert [a["rows_in"] for a in accounts] == [3, 1, 3]


def test_dfn_index_selects_exactly_the_indexed_rows(tmp_path):
    uids = [_hex(i * 7919 + (i << 70)) for i in range(1, 9)]
    parts = [tmp_path / "00000000.parquet", tmp_path / "00000001.parquet"]
    for part, chunk in zip(parts, (uids[:4], uids[4:])):
        pq.write_table(
            datacomp_table(
                chunk,
                [f"http://d/{u}.jpg" for u in chunk],
                [f"{RS} {u}" for u in chunk],
                [0.3] * len(chunk),
                ["f" * 64] * len(chunk),
            ),
            part,
        )
    selected = [uids[1], uids[2], uids[6], _hex(99)]  # the last one is in no part
    index = np.sort(uid_pairs(selected))
    assert index.dtype == INDEX_DTYPE
    index_path = tmp_path / "dfn_2b_inds.npy"
    np.save(index_path, index)
    stats, kept, _, accounts = run(tmp_path, "dfn2b", parts, format="dfn", index_file=str(index_path))
    assert sorted(kept.column("src_uid").to_pylist()) == sorted(selected[:3])
    assert (stats.rows_in, stats.kept, stats.dropped) == (8, 3, {"not_in_index": 5})
    assert [a["dropped"] for a in accounts] == [{"not_in_index": 2}, {"not_in_index": 3}]
    assert in_index(np.load(index_path, mmap_mode="r"), [uids[0], uids[6], None, "xyz"]).tolist() == [
        False,
        True,
        False,
        False,
    ]


def test_coyo_filters_and_pool_hash_columns(tmp_path):
    # COYO-700M's own parquet layout (../shared/fixtures/metadata/coyo700m/README_attributes.md).
    path = tmp_path / "part-00000.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, 2], pa.int64()),
                "url": ["http://y/1.jpg", "http://y/2.jpg"],
                "text": [RS, "satellite view of a bay"],
                "width": pa.array([300, 300], pa.int32()),
                "height": pa.array([200, 200], pa.int32()),
                "image_phash": ["c4c4c4c4c4c4c4c4", "c4c4c4c4c4c4c4c4"],
                "clip_similarity_vitb32": pa.array([0.31, 0.2], pa.float32()),
                "nsfw_score_opennsfw2": pa.array([0.0, 0.0], pa.float32()),
            }
        ),
        path,
    )
    stats, kept, _, _ = run(
        tmp_path, "coyo700m", [path], columns={"phash": "image_phash"}, filters=["clip_similarity_vitb32 >= 0.3"]
    )
    assert (stats.kept, stats.dropped) == (1, {"source_filter": 1})
    assert kept.column("src_image_phash").to_pylist() == ["c4c4c4c4c4c4c4c4"]
    sources = {
        "coyo700m": {"format": None, "columns": {"phash": "image_phash", "sha256": None}},
        "commonpool": {"format": "datacomp", "columns": None},
        "commonpool_unverified": {"format": "datacomp", "columns": {"sha256": ""}},
        "laion2b": {"format": None, "columns": None},
    }
    assert pool_hash_columns(sources, "phash") == {"coyo700m": "image_phash"}
    assert pool_hash_columns(sources, "sha256") == {"commonpool": "sha256"}


def test_mappings_are_checked_up_front():
    with pytest.raises(SourceFormatError, match="only name sha256/phash"):
        build_format("coyo700m", {"url": "u"}, [], None)
    with pytest.raises(SourceFormatError, match="columns.url"):
        build_format("table", {"caption": "c"}, [], None)
    with pytest.raises(SourceFormatError, match="needs `index_file`"):
        build_format("dfn", None, [], None)


def test_refresh_example_is_a_valid_config_of_coherent_sources():
    import jsonschema
    import yaml

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    example = yaml.safe_load((REPO / "config" / "examples" / "refresh-2026.yaml").read_text())
    jsonschema.validate(example, schema)
    for name, source in example["sources"].items():
        fmt = build_format(source.get("format") or name, source.get("columns"), source.get("filters", []), None)
        assert fmt.url and fmt.captions
    assert pool_hash_columns(example["sources"], "sha256") == {"commonpool": "sha256"}
    assert pool_hash_columns(example["sources"], "phash") == {"coyo700m": "image_phash"}
    archives = [d for d in example["rs3"]["datasets"] if isinstance(d, dict)]
    assert {a["format"] for a in archives} == {"folder", "table"}
