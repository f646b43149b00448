"""A build with only PUB11 sources or only RS3 datasets assembles its one subset (issue 14, item 1).

The library half: shards, metafiles, statistics, card and audit of one subset, the card and the
audit naming the absent one. The Snakemake half (the plan of such a build) is in test_workflow.py.
"""

import json

import pytest
from assembly_fakes import make_pub11, make_rs3
from schema_defaults import shard_settings

from rs5m.assemble.audit import audit, main
from rs5m.assemble.dataset_card import write_card
from rs5m.assemble.dataset_stats import OUTPUTS, write_report
from rs5m.assemble.metafiles import write_metafiles
from rs5m.assemble.settings import CardSettings, MetafileSettings, StatsSettings
from rs5m.assemble.shards import write_subset_shards
from rs5m.configured import config

CARD = {
    "name": "RS5M",
    "description": "test build",
    "license": "https://creativecommons.org/licenses/by-nc/4.0/",
    "url": "https://example.invalid/rs5m",
    "version": "0.1.0",
    "validate": True,
}
WHY = {"pub11": "no PUB11 source is configured", "rs3": "no RS3 dataset is configured"}


def _build(run, subset):
    """Everything the assembly rules write for a build holding only `subset`."""
    if subset == "pub11":
        make_pub11(run, {"laion2b": 20, "wit": 8})
        finals = {
            "pub11_final": run / "results/pub11/final.parquet",
            "rs3_final": None,
            "places": run / "results/pub11/places.parquet",
        }
    else:
        make_rs3(run)
        finals = {"pub11_final": None, "rs3_final": run / "results/rs3/final.parquet", "places": None}
    manifest = run / f"results/shards/{subset}.manifest.json"
    write_subset_shards(
        subset,
        run / f"results/{subset}/final.parquet",
        run / "results/shards",
        manifest,
        shard_settings(split={"val_fraction": 0.2}, shards={"target_bytes": 30_000}),
        base_dir=run,
    )
    split = config({"split": {"val_fraction": 0.2}})
    counts = write_metafiles(
        out_dir=run / "results/metafiles", pub11_meta=None, settings=MetafileSettings.from_config(split), **finals
    )
    write_report(
        finals["pub11_final"],
        finals["rs3_final"],
        run / "results/stats",
        StatsSettings.from_config(split),
        base_dir=run,
    )
    absent = {other: WHY[other] for other in ("pub11", "rs3") if other != subset}
    write_card(
        [manifest],
        run / "results/metafiles",
        run / "results/shards/README.md",
        run / "results/shards/croissant.json",
        {"split": {"val_fraction": 0.2}},
        CardSettings.from_config(config({"card": CARD})),
        absent=absent,
        decontamination_csv=None,
        evaluation_md=None,
    )
    return counts, absent


@pytest.mark.parametrize("subset", ["pub11", "rs3"])
def test_one_subset_assembles_and_names_the_absent_one(tmp_path, subset, capsys):
    counts, absent = _build(tmp_path, subset)
    (other,) = absent
    written = sorted(p.name for p in (tmp_path / "results/metafiles").iterdir())
    assert written == sorted(counts) and all(name.startswith(subset) for name in written)
    assert all(counts[name] > 0 for name in counts if "validation" not in name)
    assert all((tmp_path / "results/stats" / name).exists() for name in OUTPUTS)
    readme = (tmp_path / "results/shards/README.md").read_text()
    assert "## Absent subsets" in readme and f"**{other}** is not in this build: {WHY[other]}." in readme
    croissant = json.loads((tmp_path / "results/shards/croissant.json").read_text())
    assert f"The {other} subset is absent from this build: {WHY[other]}." in croissant["description"]
    assert all(d["name"].startswith((f"train/{subset}", f"val/{subset}", subset)) for d in croissant["distribution"])

    result = audit(tmp_path, absent=absent)
    assert result.ok, result.violations
    assert result.absent == absent and result.checked["shard_samples"] == result.checked["kept"] > 0
    # The CLI, without a declaration, infers it from the run folder and says so.
    assert audit(tmp_path).absent == {other: "no final table in this run folder"}
    assert main(["audit", str(tmp_path)]) == 0
    assert f"subset {other} absent" in capsys.readouterr().out


def test_a_present_subset_without_its_shards_still_fails(tmp_path):
    _build(tmp_path, "pub11")
    make_rs3(tmp_path)  # a final table but no manifest: declared present, so the audit must object
    result = audit(tmp_path, absent={})
    assert not result.ok and any(v.startswith("manifest: results/shards/rs3.manifest.json") for v in result.violations)
