import json

import pytest
from assembly_fakes import make_run
from schema_defaults import shard_settings

from rs5m.assemble.dataset_card import validate_croissant, write_card
from rs5m.assemble.metafiles import write_metafiles
from rs5m.assemble.settings import CardSettings, MetafileSettings
from rs5m.assemble.shards import write_subset_shards
from rs5m.configured import config

CARD = {
    "name": "RS5M",
    "description": "test build",
    "license": "https://creativecommons.org/licenses/by-nc/4.0/",
    "url": "https://example.invalid/rs5m",
    "version": "0.1.0",
}


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"))
    manifests = []
    for subset in ("pub11", "rs3"):
        manifests.append(run / f"results/shards/{subset}.manifest.json")
        write_subset_shards(
            subset,
            run / f"results/{subset}/final.parquet",
            run / "results/shards",
            manifests[-1],
            shard_settings(split={"val_fraction": 0.2}, shards={"target_bytes": 30_000}),
            base_dir=run,
        )
    write_metafiles(
        run / "results/pub11/final.parquet",
        run / "results/rs3/final.parquet",
        run / "results/pub11/places.parquet",
        run / "results/metafiles",
        pub11_meta=None,
        settings=MetafileSettings.from_config(config({"split": {"val_fraction": 0.2}})),
    )
    write_card(
        manifests,
        run / "results/metafiles",
        run / "results/shards/README.md",
        run / "results/shards/croissant.json",
        {"split": {"val_fraction": 0.2}, "shards": {"target_bytes": 30000}},
        CardSettings.from_config(config({"card": {**CARD, "validate": True}})),
        absent=None,
        decontamination_csv=None,
        evaluation_md=None,
    )
    return run


def test_readme_counts_licences_config_versions(card):
    text = (card / "results/shards/README.md").read_text()
    manifest = json.loads((card / "results/shards/rs3.manifest.json").read_text())
    ben = manifest["counts"]["ben"]
    assert f"| rs3 | ben | {ben['train']} | {ben['val']} |" in text
    assert "CDLA-Permissive-1.0" in text and "Visual Genome" in text
    assert "val_fraction: 0.2" in text and "target_bytes: 30000" in text
    assert f"- webdataset {__import__('importlib.metadata').metadata.version('webdataset')}" in text


def test_croissant_lists_every_shard_with_checksum(card):
    document = json.loads((card / "results/shards/croissant.json").read_text())
    files = {f["@id"]: f for f in document["distribution"]}
    for subset in ("pub11", "rs3"):
        for shard in json.loads((card / f"results/shards/{subset}.manifest.json").read_text())["shards"]:
            assert files[shard["path"]]["sha256"] == shard["sha256"]
            assert (card / "results/shards" / files[shard["path"]]["contentUrl"]).exists()
    assert {r["@id"] for r in document["recordSet"]} == {
        "pub11_train_metadata",
        "pub11_validation_metadata",
        "rs3_train_val_metadata",
        "pub11_NER_geolocation_info",
    }


def test_mlcroissant_validates_and_reads_records(card):
    mlcroissant = pytest.importorskip("mlcroissant")
    path = card / "results/shards/croissant.json"
    assert validate_croissant(path) == []
    records = list(mlcroissant.Dataset(jsonld=str(path)).records("rs3_train_val_metadata"))
    assert len(records) == 30
    assert {r["rs3_train_val_metadata/subset"] for r in records} == {b"train", b"val"}


def test_mlcroissant_rejects_a_broken_description(card, tmp_path):
    pytest.importorskip("mlcroissant")
    document = json.loads((card / "results/shards/croissant.json").read_text())
    del document["distribution"][0]["encodingFormat"]
    document["recordSet"][0]["field"][0]["source"]["fileObject"]["@id"] = "no-such-file"
    broken = tmp_path / "croissant.json"
    broken.write_text(json.dumps(document))
    errors = validate_croissant(broken)
    assert errors and any("no-such-file" in e or "encodingFormat" in e for e in errors)
