"""The config schema documents every key, and both shipped configs are valid instances."""

import os

import jsonschema
import yaml
from conftest import REPO

from rs5m.demo.demo_metadata import DEMO_FILES

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def walk(properties, prefix=""):
    for name, spec in properties.items():
        yield prefix + name, spec
        if "properties" in spec:
            yield from walk(spec["properties"], prefix + name + ".")


def test_every_key_has_a_description_and_a_default():
    keys = list(walk(SCHEMA["properties"])) + list(walk(SCHEMA["$defs"]["source"]["properties"], "sources.*."))
    assert len(keys) > 10
    missing = [k for k, spec in keys if "description" not in spec or "default" not in spec]
    assert missing == []


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "rs5m.yaml"):
        jsonschema.validate(yaml.safe_load((REPO / "config" / name).read_text()), SCHEMA)


def test_an_unknown_key_is_rejected():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["metadata"]["max_caption_byte"] = 10
    try:
        jsonschema.validate(config, SCHEMA)
    except jsonschema.ValidationError as error:
        assert "max_caption_byte" in str(error)
    else:
        raise AssertionError("a misspelt key passed validation")


def test_demo_config_names_the_files_the_demo_writes():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    root = os.path.join(config["demo"]["root"], "metadata")
    assert set(config["sources"]) == set(DEMO_FILES)
    for source, files in DEMO_FILES.items():
        assert config["sources"][source]["paths"] == [os.path.join(root, f) for f in files]


def test_full_config_lists_the_eleven_sources():
    config = yaml.safe_load((REPO / "config" / "rs5m.yaml").read_text())
    assert list(config["sources"]) == [
        "laion2b",
        "coyo700m",
        "laioncoco",
        "laion400m",
        "wit",
        "yfcc15m",
        "cc12m",
        "redcaps",
        "cc3m",
        "sbu",
        "vg",
    ]
    assert config["demo"]["enabled"] is False
