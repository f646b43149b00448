"""The assembly rules on a fake finished run: shards, metafiles, stats, card, audit and the report."""

import csv
import json

import pytest
import yaml
from assembly_fakes import CC3M_LABELS, make_run
from conftest import snakemake

from rs5m.assemble.funnel import write_funnel

pytestmark = pytest.mark.workflow

ASSEMBLY_RULES = [
    "pub11_metacaption",
    "shards_part",
    "shards",
    "metafiles",
    "dataset_stats",
    "dataset_card",
    "audit",
    "assemble",
]


def _workdir(path, **shards):
    make_run(path)
    stats = sorted(str(p) for p in (path / "results").rglob("*.stats.json"))
    write_funnel(
        stats, path / "results/stats/funnel.csv", path / "results/stats/funnel.md", path / "results/stats/funnel.json"
    )
    config = {
        "demo": {"enabled": False},
        "sources": {},
        "rs3": {"datasets": []},
        "split": {"val_fraction": 0.2},
        # Final tables and ledger made by the fakes, not by this build's stages.
        "shards": {"target_bytes": 30000, "subsets": ["pub11", "rs3"], **shards},
        "audit": {"ledger": ["results/pub11/ledger/all.stats.json"]},
        "card": {"name": "RS5M test"},
        "parts": 2,
        "metacaption": {"cc3m_labels": CC3M_LABELS, "pub11_caption": "prepend"},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def _run(workdir, *options):
    return snakemake(
        workdir,
        "--cores",
        "2",
        "--configfile",
        str(workdir / "config.yaml"),
        *options,
        "--allowed-rules",
        *ASSEMBLY_RULES,
        "--",
        "assemble",
    )


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    workdir = _workdir(tmp_path_factory.mktemp("assemble"))
    _run(workdir)
    return workdir


def _tars(workdir):
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted((workdir / "results/shards").rglob("*.tar"))}


def test_assemble_writes_everything_and_the_audit_passes(assembled):
    audit = json.loads((assembled / "results/stats/audit.json").read_text())
    assert audit["ok"] and audit["checked"]["shard_samples"] == audit["checked"]["kept"] > 30
    manifests = [json.loads((assembled / f"results/shards/{s}.manifest.json").read_text()) for s in ("pub11", "rs3")]
    listed = {f"results/shards/{shard['path']}" for m in manifests for shard in m["shards"]}
    assert listed == set(_tars(assembled)) and any("/val/" in p for p in listed)
    for name in ("README.md", "croissant.json"):
        assert (assembled / "results/shards" / name).stat().st_size > 0
    for name in ("rs3_counts.md", "utm_zones.png", "keyword_frequency.png"):
        assert (assembled / "results/stats" / name).exists()
    meta = json.loads((assembled / "results/stats/pub11_metacaptions.json").read_text())
    assert meta["cc3m"]["with_labels"] == meta["cc3m"]["kept"] > 0 and meta["yfcc15m"]["with_country"] > 0
    # pub11_caption: prepend - the released text starts with the meta-caption
    with open(assembled / "results/metafiles/pub11_train_metadata.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cc3m = [r for r in rows if r["source"] == "cc3m"]
    assert cc3m and all(r["meta_caption"] and r["text"].startswith(r["meta_caption"] + " ") for r in cc3m)


def test_rerun_from_scratch_is_byte_identical(assembled, tmp_path):
    other = _workdir(tmp_path / "again")
    _run(other)
    assert _tars(other) == _tars(assembled)
    for name in ("pub11.manifest.json", "rs3.manifest.json"):
        assert (other / "results/shards" / name).read_bytes() == (assembled / "results/shards" / name).read_bytes()
    for name in ("pub11_train_metadata.csv", "rs3_train_val_metadata.csv"):
        assert (other / "results/metafiles" / name).read_bytes() == (
            assembled / "results/metafiles" / name
        ).read_bytes()


def test_shard_jobs_in_parallel_write_the_same_bytes(assembled, tmp_path):
    """shards.jobs: 3 - three shards_part jobs per subset and a merge give the single job's tars
    and manifests byte for byte."""
    other = _workdir(tmp_path / "parallel", jobs=3)
    _run(other)
    assert len(list((other / "logs/shards").glob("*-[0-9].log"))) == 6  # one per subset and group
    assert _tars(other) == _tars(assembled)
    for name in ("pub11.manifest.json", "rs3.manifest.json"):
        assert (other / "results/shards" / name).read_bytes() == (assembled / "results/shards" / name).read_bytes()
    audit = json.loads((other / "results/stats/audit.json").read_text())
    assert audit["ok"]


def test_snakemake_report_html(assembled):
    _run(assembled, "--report", str(assembled / "report.html"))
    html = (assembled / "report.html").read_text(errors="replace")
    assert "utm_zones.png" in html and "keyword_frequency.png" in html and "audit.json" in html
