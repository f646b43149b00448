import csv

import pyarrow.parquet as pq
import pytest
from assembly_fakes import CC3M_LABELS, make_run
from schema_defaults import pub11_metacaption_args

from rs5m.assemble.metafiles import write_metafiles
from rs5m.assemble.settings import Metacaption, MetafileSettings, Split
from rs5m.assemble.split import split_of
from rs5m.pub11.pub11_metacaption import pub11_metacaptions


def _write(run, out, caption_mode):
    return write_metafiles(
        run / "results/pub11/final.parquet",
        run / "results/rs3/final.parquet",
        run / "results/pub11/places.parquet",
        run / out,
        pub11_meta=run / "results/pub11/metacaption.parquet",
        # Built directly, not from a validated config: the library's own check of the mode is tested.
        settings=MetafileSettings(split=Split(val_fraction=0.2), metacaption=Metacaption(pub11_caption=caption_mode)),
    )


@pytest.fixture(scope="module")
def metafiles(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"))
    pub11_metacaptions(
        run / "results/pub11/final.parquet",
        sorted(run.glob("results/pub11/urldedup/*.parquet")),
        run / "results/pub11/metacaption.parquet",
        **pub11_metacaption_args(cc3m_labels=run / CC3M_LABELS),
    )
    counts = _write(run, "results/metafiles", "keep")
    return run, counts


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pub11_train_and_validation(metafiles):
    run, counts = metafiles
    final = {r["uid"]: r for r in pq.read_table(run / "results/pub11/final.parquet").to_pylist()}
    train = _read(run / "results/metafiles/pub11_train_metadata.csv")
    val = _read(run / "results/metafiles/pub11_validation_metadata.csv")
    assert list(train[0])[:2] == ["file_name", "text"]
    assert len(train) + len(val) == len(final) and val
    assert counts["pub11_validation_metadata.csv"] == len(val)
    for row, split in [(r, "train") for r in train] + [(r, "val") for r in val]:
        source = final[row["uid"]]
        assert split_of(row["uid"], 0.2) == split
        assert row["file_name"] == f"{source['source']}_{row['uid']}.jpg"
        assert row["text"] == source["caption"]  # non-ASCII survives
        assert row["matched_keywords"] == "|".join(source["matched_keywords"])
    assert [r["uid"] for r in train] == sorted(r["uid"] for r in train)


def _pub11(run, out="results/metafiles"):
    rows = _read(run / out / "pub11_train_metadata.csv") + _read(run / out / "pub11_validation_metadata.csv")
    return {r["uid"]: r for r in rows}


def test_pub11_meta_captions_and_geo_columns(metafiles):
    run, _ = metafiles
    rows = _pub11(run)
    assert {"meta_caption", "labels", "geo_country", "geo_lat", "geo_season", "geo_date"} <= set(
        next(iter(rows.values()))
    )
    by_source = {}
    for row in rows.values():
        by_source.setdefault(row["source"], []).append(row)
    assert all(r["meta_caption"] == "" and r["geo_country"] == "" for r in by_source["laion2b"] + by_source["wit"])
    yfcc_countries = {r["geo_country"] for r in by_source["yfcc15m"]}
    assert yfcc_countries == {"Australia", "France", ""}  # the fake cycles Sydney, Paris, no geotag
    assert all(r["meta_caption"] and r["geo_date"] for r in by_source["yfcc15m"])
    sydney = next(r for r in by_source["yfcc15m"] if r["geo_country"] == "Australia")
    assert "Australia" in sydney["meta_caption"] and float(sydney["geo_lat"]) == -33.87
    assert {r["labels"] for r in by_source["cc3m"]} == {"aerial photography", "aerial photography|field"}


def test_pub11_prepend_mode(metafiles):
    run, _ = metafiles
    _write(run, "prepend", "prepend")
    kept, prepended = _pub11(run), _pub11(run, "prepend")
    assert kept.keys() == prepended.keys()
    for uid, row in prepended.items():
        web = kept[uid]["text"]
        if row["meta_caption"]:
            assert row["text"] == f"{row['meta_caption']} {web}"
        else:
            assert row["text"] == web
    assert sum(bool(r["meta_caption"]) for r in prepended.values()) > 20
    with pytest.raises(ValueError, match="pub11_caption"):
        _write(run, "bad", "append")


def test_rs3_columns(metafiles):
    run, _ = metafiles
    rows = _read(run / "results/metafiles/rs3_train_val_metadata.csv")
    assert list(rows[0])[:8] == ["name", "caption", "subset", "dataset", "uid", "top_cap", "ssl_cap", "meta_caption"]
    assert {"geo_lat", "geo_lon", "geo_utm", "geo_season"} <= set(rows[0])
    by_name = {r["name"]: r for r in rows}
    assert by_name["ben_img_0.jpg"]["labels"] == "forest|water"
    assert by_name["ben_img_0.jpg"]["geo_season"] == "Summer" and by_name["ben_img_0.jpg"]["geo_lat"] == ""
    assert by_name["millionaid_img_0.jpg"]["meta_caption"] == ""
    assert {r["subset"] for r in rows} == {"train", "val"}
    assert len(rows) == 30


def test_ner_table(metafiles):
    run, _ = metafiles
    rows = _read(run / "results/metafiles/pub11_NER_geolocation_info.csv")
    final = {r["uid"]: r for r in pq.read_table(run / "results/pub11/final.parquet").to_pylist()}
    assert list(rows[0]) == ["img_name", "text", "entity"]
    assert len(rows) == 3 and all(r["entity"] == "Paris" for r in rows)
    names = {f"{r['source']}_{uid}.jpg" for uid, r in final.items()}
    assert all(r["img_name"] in names for r in rows)


def test_first_two_columns_are_name_and_caption_in_every_metafile(metafiles):
    """A reader that takes column 0 as the image name and column 1 as its caption (the authors'
    CSV dataset does) gets both right in every metafile."""
    run, _ = metafiles
    pub11 = {
        f"{r['source']}_{r['uid']}.jpg": r["caption"]
        for r in pq.read_table(run / "results/pub11/final.parquet").to_pylist()
    }
    rs3 = {r["img_name"]: r["caption"] for r in pq.read_table(run / "results/rs3/final.parquet").to_pylist()}
    expected = {
        "pub11_train_metadata.csv": pub11,
        "pub11_validation_metadata.csv": pub11,
        "rs3_train_val_metadata.csv": rs3,
        "pub11_NER_geolocation_info.csv": pub11,
    }
    for name, captions in expected.items():
        with open(run / "results/metafiles" / name, newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        assert rows, name
        for row in rows:
            assert row[1] == captions[row[0]], (name, row[:2])
