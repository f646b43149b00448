"""Labelled RS archives of any kind in RS3 (rs3.datasets entries `{name, format: folder | table, root, ...}`):
the reader, their meta-captions, and one RS3-only run of the workflow on the tiny models that puts
a folder archive and a table archive of 4-band GeoTIFFs into the rs3 shards and metafile."""

import csv
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, snakemake
from PIL import Image
from rs3_archives import archive_entries, write_folder_archive, write_table_archive

from rs5m.rs3.rs3_metacaption import rs3_meta_rows
from rs5m.rs3.rs3_read_archive import read_archive
from rs5m.rs3.settings import ArchiveSettings


def _read(tmp_path, entry):
    out = tmp_path / "read" / f"{entry['name']}.parquet"
    stats = read_archive(
        entry["name"],
        entry["root"],
        out,
        tmp_path / "images" / entry["name"],
        ArchiveSettings.from_entry(entry),
        threads=2,
    )
    rows = {r["img_name"]: r for r in pq.read_table(out).to_pylist()}
    drops = pq.read_table(out.with_name(f"{entry['name']}.drops.parquet")).to_pylist()
    return stats, rows, drops


def test_folder_archive_labels_come_from_the_folders(tmp_path):
    root = write_folder_archive(tmp_path / "folder")
    entry = archive_entries(root, tmp_path)[0]
    stats, rows, drops = _read(tmp_path, entry)
    assert (stats.rows_in, stats.kept, drops) == (3, 3, [])
    assert {name: r["labels"] for name, r in rows.items()} == {
        "lab_folder_forest_f1.jpg": ["forest"],
        "lab_folder_forest_f2.jpg": ["forest"],
        "lab_folder_river_bend_r1.jpg": ["river", "bend"],
    }
    f2 = rows["lab_folder_forest_f2.jpg"]
    assert f2["image_path"] == str(root / "forest" / "f2.png") and (f2["width"], f2["height"]) == (48, 48)
    meta = rs3_meta_rows(list(rows.values()), seed=0, season_rule="hemisphere")
    captions = {m["img_name"]: m["meta_caption"] for m in meta}
    assert "'river, bend'" in captions["lab_folder_river_bend_r1.jpg"]
    assert all("season" not in json.loads(m["geo"]) for m in meta)  # no date: no season clause


def test_table_archive_of_four_band_geotiffs(tmp_path):
    root = write_table_archive(tmp_path / "table")
    entry = archive_entries(tmp_path, root)[1]
    stats, rows, drops = _read(tmp_path, entry)
    assert (stats.rows_in, stats.kept) == (4, 3)
    assert [(d["reason"], d["detail"]) for d in drops] == [("missing_image", "tiles/missing.tif")]
    t1 = rows["lab_table_tiles_t1.jpg"]
    assert t1["labels"] == ["harbour", "ships"] and (t1["width"], t1["height"]) == (40, 32)
    # bands [3, 2, 1] of B, G, R, NIR scaled by the clip [0, 3000]: the JPEG's red is band 3
    import rasterio

    with rasterio.open(root / "tiles" / "t1.tif") as source:
        red = source.read(3).astype(float)
    with Image.open(t1["image_path"]) as image:
        jpeg_red = np.asarray(image.convert("RGB"))[..., 0].astype(float)
    assert np.corrcoef(red.ravel() / 3000 * 255, jpeg_red.ravel())[0, 1] > 0.9
    meta = {m["img_name"]: m for m in rs3_meta_rows(list(rows.values()), seed=0, season_rule="hemisphere")}
    first = meta["lab_table_tiles_t1.jpg"]["meta_caption"]
    for part in ("PlanetScope", "summer", "'harbour, ships'", "Germany", "0.5 m", "July 14, 2025"):
        assert part in first, (part, first)
    second = json.loads(meta["lab_table_tiles_t2.jpg"]["geo"])
    # no coordinates in the table: the GeoTIFF's centre (UTM 32N near Hamburg) is used
    assert second["season"] == "winter" and 53 < second["lat"] < 54 and second["country"] == "Germany"
    third = meta["lab_table_tiles_t3.jpg"]
    assert third["labels"] == [] and "Australia" in third["meta_caption"]


@pytest.mark.workflow
def test_archives_run_through_rs3_into_shards_and_metafile(tmp_path):
    folder = write_folder_archive(tmp_path / "archives" / "folder")
    table = write_table_archive(tmp_path / "archives" / "table")
    settings = yaml.safe_load((REPO / "config/config.yaml").read_text())
    settings.update(sources={}, parts=1)
    settings["rs3"]["datasets"] = [
        {k: v for k, v in entry.items() if v is not None} for entry in archive_entries(folder, table)
    ]
    settings["decontamination"].update(demo_eval_sets=False, eval_sets={})
    config = tmp_path / "archives.yaml"
    config.write_text(yaml.safe_dump(settings))
    snakemake(
        tmp_path, "--cores", "2", "--configfile", str(config), "--", "metafiles", "results/shards/rs3.manifest.json"
    )

    with open(tmp_path / "results/metafiles/rs3_train_val_metadata.csv", newline="") as handle:
        metafile = {row["name"]: row for row in csv.DictReader(handle)}
    assert sorted(metafile) == [
        "lab_folder_forest_f1.jpg",
        "lab_folder_forest_f2.jpg",
        "lab_folder_river_bend_r1.jpg",
        "lab_table_tiles_t1.jpg",
        "lab_table_tiles_t2.jpg",
        "lab_table_tiles_t3.jpg",
    ]
    t1 = metafile["lab_table_tiles_t1.jpg"]
    assert t1["dataset"] == "lab_table" and "PlanetScope" in t1["meta_caption"]
    assert t1["caption"].startswith(t1["meta_caption"] + " ")
    assert metafile["lab_folder_forest_f1.jpg"]["labels"] == "forest"

    shard_captions = {}
    for path in sorted((tmp_path / "results/shards").glob("*/rs3-*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    record = json.loads(tar.extractfile(member).read())
                    shard_captions[record["img_name"]] = record["meta_caption"]
    assert shard_captions == {name: row["meta_caption"] for name, row in metafile.items()}
    read_stats = json.loads((tmp_path / "results/rs3/read/lab_table.stats.json").read_text())
    assert read_stats[0]["dropped"] == {"missing_image": 1}
