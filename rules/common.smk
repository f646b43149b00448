# Configuration checks, wildcard constraints and helper functions. No rules here.
import os
import sys

from snakemake.utils import validate

from rs5m.columns import PUB11_SOURCES
from rs5m.duck import memory_limit_for
from rs5m.pub11.sources import DEFAULT_FORMAT, plan_chunks, resolve_files

validate(config, schema="../config/schema.yaml")


wildcard_constraints:
    source="[a-z0-9_]+",
    chunk="[0-9]{5}",
    part="[0-9]{4}",


def repo_path(path):
    """A configured path as given if it exists from the working directory, else from the repository."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


if config["offline"]:
    # Inherited by every job: model libraries never reach for a hub (rs5m.offline).
    os.environ.update(RS5M_OFFLINE="1")

DEMO = config["demo"]
DEMO_METADATA = os.path.join(DEMO["root"], "metadata")
PARTS = [f"{i:04d}" for i in range(config["parts"])]


def source_format(source):
    fmt = config["sources"][source].get("format") or DEFAULT_FORMAT.get(source)
    if fmt is None:
        raise ValueError(
            f"source {source!r} is not one of the eleven PUB11 sources: set its `format:`"
        )
    return fmt


def _plan_sources():
    produced = (DEMO_METADATA,) if DEMO["enabled"] else ()
    plan = {}
    for source, settings in config["sources"].items():
        files = resolve_files(settings["paths"], produced_prefixes=produced)
        if not files:
            print(
                f"rs5m: source {source}: no input file matches {settings['paths']}; skipped",
                file=sys.stderr,
            )
            continue
        source_format(source)
        try:
            plan[source] = plan_chunks(files, settings["files_per_job"])
        except ValueError as error:
            raise ValueError(f"source {source}: {error}") from None
    return plan


CHUNKS = _plan_sources()
# The eleven in SPEC order first, then sources of the user's own, by name.
SOURCES = [s for s in PUB11_SOURCES if s in CHUNKS] + sorted(
    set(CHUNKS) - set(PUB11_SOURCES)
)


def source_chunks(source):
    return sorted(CHUNKS[source])


def chunk_files(wildcards):
    return CHUNKS[wildcards.source][wildcards.chunk]


def source_index_file(wildcards):
    """A source's DFN-style index file (sources.<name>.index_file), or no input."""
    return config["sources"][wildcards.source]["index_file"] or []


def keyword_outputs(kind="parquet"):
    """Every keyword-filter output (`parquet`, `stats.json`, `drops.parquet`, `files.json`)."""
    return [
        f"results/pub11/metadata/{source}/{chunk}.{kind}"
        for source in SOURCES
        for chunk in source_chunks(source)
    ]


def ledger_files():
    """The ledger (`.stats.json`) of every job of every stage, in DAG order: the funnel and the
    audit read exactly these (the `.drops.parquet` files lie beside them); `audit.ledger` names
    them instead for tables assembled from another run."""
    if config["audit"]["ledger"] is not None:
        return list(config["audit"]["ledger"])
    files = keyword_outputs("stats.json")
    if SOURCES:
        files += [
            "results/pub11/urldedup.stats.json",
            *expand("results/pub11/download/{part}.stats.json", part=PARTS),
            *expand("results/pub11/images/{part}.stats.json", part=PARTS),
            "results/pub11/dedup/kept.stats.json",
            "results/pub11/outliers.stats.json",
        ]
    if RS3_DATASETS:
        files += rs3_read_outputs("stats.json") + rs3_caption_outputs("stats.json")
    # The decontamination stage (rules/decontamination.smk) writes each subset's final table.
    if SOURCES:
        files.append("results/pub11/final.stats.json")
    if RS3_DATASETS:
        files.append("results/rs3/final.stats.json")
    return files


# Outlier stage (rules/pub11_outliers.smk).
OUTLIERS = config["outliers"]
DETECTOR = OUTLIERS["detector"]


def detector_weights(wildcards):
    """Configured weights skip training; otherwise the weights rule train_rs_detector writes."""
    if DETECTOR["weights"]:
        return repo_path(DETECTOR["weights"])
    return "results/pub11/rs_detector/weights.pt"


def outlier_clip_checkpoint():
    """A local CLIP checkpoint as an input of the scoring jobs (the demo's is built by a rule)."""
    pretrained = OUTLIERS["clip"]["pretrained"]
    if pretrained and (
        os.path.exists(pretrained) or pretrained.startswith(DEMO["root"])
    ):
        return [pretrained]
    return []


def outlier_outputs():
    """Targets of this stage for rule all."""
    if not SOURCES:
        return []
    targets = [
        "results/pub11/final.parquet",
        "results/stats/fig13_grid.md",
        "results/stats/fig13_grid.png",
        "results/stats/outlier_score_histograms.png",
    ]
    if not DETECTOR["weights"]:
        targets.append("results/pub11/rs_detector/metrics.json")
    return targets


# PUB11 meta-captions (rules/pub11_metacaption.smk).
METACAPTION = config["metacaption"]


def cc3m_labels_file():
    """The CC3M labels file as a list of zero or one input; a configured file that is missing is
    reported and skipped (CC3M samples then get no meta-caption), like a missing RS3 dataset.
    """
    path = METACAPTION["cc3m_labels"]
    if not path:
        return []
    if DEMO["enabled"] and path.startswith(DEMO_METADATA):
        return [path]
    if not os.path.exists(repo_path(path)):
        print(
            f"rs5m: metacaption.cc3m_labels: {path} not found; CC3M samples get no meta-caption",
            file=sys.stderr,
        )
        return []
    return [repo_path(path)]


def subset_meta_captions(wildcards):
    """The PUB11 meta-caption table for the PUB11 shards (RS3 captions already hold theirs)."""
    if wildcards.subset == "pub11":
        return ["results/pub11/metacaption.parquet"]
    return []


def absent_subsets():
    """{subset: why} for the subset a PUB11-only or RS3-only build does not hold."""
    chosen = config["shards"]["subsets"]
    if chosen is not None:
        return {s: "not in shards.subsets" for s in ("pub11", "rs3") if s not in chosen}
    absent = {}
    if not SOURCES:
        absent["pub11"] = (
            "no PUB11 source is configured or none has an input file (config `sources`)"
        )
    if not RS3_DATASETS:
        absent["rs3"] = (
            "no RS3 dataset is configured or none has its root (config `rs3.datasets`)"
        )
    return absent


def if_subset(subset, *paths):
    """The paths when this build holds the subset (rules/assemble.smk), else an empty input."""
    return [] if subset in absent_subsets() else list(paths)


def assembly_targets():
    """The dataset itself: shards, metafiles, statistics, card and audit (rules/assemble.smk).

    Either subset alone assembles; with neither there is nothing to assemble.
    """
    if len(ABSENT_SUBSETS) == 2:
        return []
    for subset, why in ABSENT_SUBSETS.items():
        print(f"rs5m: assembling without the {subset} subset: {why}", file=sys.stderr)
    return list(rules.assemble.input)
