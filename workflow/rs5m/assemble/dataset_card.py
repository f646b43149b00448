"""Assembly stage, dataset card: README.md and Croissant JSON-LD beside the shards.

Reads the shard manifests, the metafiles and the run's config; writes
`results/shards/README.md` and `results/shards/croissant.json`.

Size: the card's text and the Croissant document are one description of the same shards; the
sections from other stages' reports (decontamination, evaluation) are read from their files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from rs5m.assemble.card_loading import loading_section
from rs5m.assemble.manifest import MEMBER_NAMES, SUBSETS, Manifest
from rs5m.assemble.settings import CardSettings
from rs5m.assemble.split import SPLITS

CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

# Licences as the sources state them; images stay the property of their rights holders.
SOURCE_LICENCES = [
    ("LAION-2B-en, LAION-400M, LAION-COCO", "metadata CC-BY 4.0; images: their owners' terms"),
    ("COYO-700M", "metadata CC-BY 4.0; images: their owners' terms"),
    ("WIT", "CC BY-SA 3.0 (Wikimedia content under its own licences)"),
    ("YFCC15M (YFCC100M subset)", "per-image Creative Commons licences given in the record"),
    ("CC12M, CC3M", "Google: free use with attribution; images: their owners' terms"),
    ("RedCaps", "annotations CC-BY 4.0; images: Reddit users' terms"),
    ("SBU Captions", "research use; images: Flickr owners' terms"),
    ("Visual Genome", "CC BY 4.0"),
    ("fMoW", "fMoW Challenge Public License"),
    ("BigEarthNet", "CDLA-Permissive-1.0"),
    ("MillionAID", "academic research use only, as stated by its authors"),
]

METAFILES = {
    "pub11_train_metadata.csv": "PUB11 training samples: file_name, text, provenance, meta-caption and geo fields",
    "pub11_validation_metadata.csv": "PUB11 validation samples: file_name, text, provenance, meta-caption and geo fields",
    "rs3_train_val_metadata.csv": "RS3 samples: name, subset (split), captions, meta-caption, geo fields",
    "pub11_NER_geolocation_info.csv": "PUB11 captions that name a place: img_name, text, entity",
}

SOFTWARE = (
    "rs5m",
    "snakemake",
    "pyarrow",
    "pillow",
    "webdataset",
    "img2dataset",
    "open_clip_torch",
    "transformers",
    "torch",
    "ultralytics",
)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _counts_table(manifests: list[Manifest]) -> list[str]:
    lines = ["| subset | source | train | val |", "|---|---|---:|---:|"]
    for manifest in manifests:
        for source, splits in manifest.counts.items():
            lines.append(f"| {manifest.subset} | {source} | {splits.get('train', 0):,} | {splits.get('val', 0):,} |")
        train = sum(s.get("train", 0) for s in manifest.counts.values())
        val = sum(s.get("val", 0) for s in manifest.counts.values())
        lines.append(f"| **{manifest.subset}** | all | **{train:,}** | **{val:,}** |")
    return lines


def absent_lines(absent: dict[str, str] | None) -> list[str]:
    """The card's note on a subset this build does not hold (a PUB11-only or RS3-only build)."""
    if not absent:
        return []
    lines = ["## Absent subsets", ""]
    for subset, why in sorted(absent.items()):
        lines.append(f"- **{subset}** is not in this build: {why}.")
    return lines + [""]


def readme_text(
    manifests: list[Manifest],
    config: dict[str, Any],
    versions: dict[str, str],
    absent: dict[str, str] | None = None,
    decontamination: list[str] | None = None,
    evaluation: list[str] | None = None,
) -> str:
    member_names = manifests[0].member_names if manifests else "rs5m"
    names = MEMBER_NAMES[member_names]
    members = (
        ", ".join(f"`<key>.{names[k]}`" for k in ("img_name", "image", "caption", "json"))
        if names["image"]
        else "`<key>.jpg` (or the image's own extension), `<key>.txt`, `<key>.json`"
    )
    shard_lines = ["| split | subset | shards | samples | bytes |", "|---|---|---:|---:|---:|"]
    for manifest in manifests:
        for split in SPLITS:
            shards = [s for s in manifest.shards if s.split == split]
            shard_lines.append(
                f"| {split} | {manifest.subset} | {len(shards)} | {sum(s.samples for s in shards):,} | "
                f"{sum(s.bytes for s in shards):,} |"
            )
    total = sum(s.samples for m in manifests for s in m.shards)
    parts = [
        "# RS5M (rebuilt)",
        "",
        "A remote-sensing image-text dataset rebuilt by the RS5M build system: PUB11 (web image-text pairs "
        "from eleven public datasets, filtered to remote-sensing content) and RS3 (images of three labelled "
        f"remote-sensing datasets, captioned with BLIP-2 and meta-captions). This build holds {total:,} pairs.",
        "",
        *absent_lines(absent),
        "## Files",
        "",
        f"WebDataset tars `{{train,val}}/{{pub11,rs3}}-{{split}}-NNNN.tar`; each sample has the members {members}. "
        "The key is the sample's `uid` (16 hex digits, stable across rebuilds); the JSON member carries "
        "provenance (source, url, scores, matched keywords, labels, geo fields) with the same keys and types "
        'in every sample of a subset (missing text is `""`, labels are one `|`-joined string, `geo` is JSON '
        "text). `<subset>.manifest.json` "
        "lists every tar with its sample count, size and sha256. CSV metafiles are in `../metafiles/`.",
        "",
        *shard_lines,
        "",
        "## Counts per source",
        "",
        *_counts_table(manifests),
        "",
        *loading_section(manifests),
        "## How it was built",
        "",
        "Keyword filter over the sources' metadata, URL safety and URL deduplication, download "
        "(img2dataset), invalid-image removal, perceptual-hash deduplication, VLM and detector outlier "
        "removal (PUB11); BLIP-2 captioning with CLIP ranking and meta-captions from labels and geo fields "
        "(RS3). Every dropped row is recorded with a reason (`results/**/*.drops.parquet`); the per-source "
        "funnel is in `../stats/funnel.md`. The validation split is "
        f"{manifests[0].val_fraction if manifests else 0:.0%} per source, decided by a hash of the uid. "
        "Image bytes are copied from the downloads unchanged. Tars are byte-identical across reruns.",
        "",
        *(decontamination or []),
        *(evaluation or []),
        "## Licences of the sources",
        "",
        "| source | licence |",
        "|---|---|",
        *[f"| {source} | {licence} |" for source, licence in SOURCE_LICENCES],
        "",
        "Images remain the property of their rights holders; use of this dataset must respect each "
        "source's terms. The captions written by this build follow the licence of the build's users' choice.",
        "",
        "## Software",
        "",
        *[f"- {name} {version}" for name, version in versions.items()],
        "",
        "## Config used",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def croissant(
    manifests: list[Manifest],
    shards_dir: Path,
    metafiles_dir: Path | None,
    name: str,
    description: str,
    license_url: str,
    url: str,
    version: str,
) -> dict[str, Any]:
    """A Croissant 1.0 description: every tar and metafile as a FileObject, CSV record sets."""
    distribution: list[dict[str, Any]] = []
    for manifest in manifests:
        for shard in manifest.shards:
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": shard.path,
                    "name": shard.path,
                    "description": f"{manifest.subset} {shard.split} shard: {shard.samples} samples",
                    "contentUrl": shard.path,
                    "contentSize": f"{shard.bytes} B",
                    "encodingFormat": "application/x-tar",
                    "sha256": shard.sha256,
                }
            )
    record_sets = []
    if metafiles_dir is not None:
        relative = Path("..") / metafiles_dir.name
        for file_name, text in METAFILES.items():
            path = metafiles_dir / file_name
            if not path.exists():
                continue
            file_id = f"metafiles/{file_name}"
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": file_id,
                    "name": file_name,
                    "description": text,
                    "contentUrl": str(relative / file_name),
                    "encodingFormat": "text/csv",
                    "sha256": _sha256(path),
                }
            )
            header = path.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
            set_id = file_name.removesuffix(".csv")
            record_sets.append(
                {
                    "@type": "cr:RecordSet",
                    "@id": set_id,
                    "name": set_id,
                    "description": text,
                    "field": [
                        {
                            "@type": "cr:Field",
                            "@id": f"{set_id}/{column}",
                            "name": column,
                            "dataType": _data_type(column),
                            "source": {"fileObject": {"@id": file_id}, "extract": {"column": column}},
                        }
                        for column in header
                    ],
                }
            )
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": name,
        "description": description,
        "license": license_url,
        "url": url,
        "version": version,
        "citeAs": "Zhang, Zhao, Guo, Yin. RS5M and GeoRSCLIP: A Large Scale Vision-Language Dataset and A Large "
        "Vision-Language Model for Remote Sensing. arXiv:2306.11300",
        "distribution": distribution,
        "recordSet": record_sets,
    }


def _data_type(column: str) -> str:
    if column in ("width", "height"):
        return "sc:Integer"
    if column in ("clip_score", "rs_score"):
        return "sc:Float"
    return "sc:Text"


def decontamination_lines(report_csv: str | Path | None, settings: dict | None) -> list[str]:
    """The card's decontamination section, from the stage's report (results/stats/decontamination.csv):
    eval sets checked, thresholds, actions and counts."""
    if not report_csv or not Path(report_csv).exists():
        return []
    with open(report_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    settings = settings or {}
    phash = settings.get("phash", {}).get("radius")
    embedding = settings.get("embedding", {})
    actions = settings.get("action", {})
    sets = [r for r in rows if r["eval_set"] != "total"]
    lines = ["## Eval-set decontamination", ""]
    if not sets:
        return lines + ["This build was checked against no evaluation set (`decontamination.eval_sets` was empty).", ""]
    threshold = f"cosine >= {embedding.get('threshold')}" if embedding.get("enabled", True) else "off"
    lines += [
        "Checked against "
        + ", ".join(f"`{r['eval_set']}` ({r['images_read']} images)" for r in sets)
        + f": pHash of the eight rotations/flips of each eval image within {phash} bits, and the scoring CLIP's "
        f"image embedding ({threshold}). PUB11 matches: `{actions.get('pub11')}`; RS3 matches: `{actions.get('rs3')}` "
        "(dropped samples carry reason `eval_overlap`; details in `../stats/decontamination.md`).",
        "",
        "| eval set | images | PUB11 matched | PUB11 dropped | RS3 matched | RS3 dropped |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {r['eval_set']} | {r['images_read']} | {r['pub11_matched']} | {r['pub11_dropped']} | "
            f"{r['rs3_matched']} | {r['rs3_dropped']} |"
            for r in rows
        ],
        "",
    ]
    return lines


def evaluation_lines(evaluation_md: str | Path | None) -> list[str]:
    """The card's Evaluation section: the evaluation table (its title dropped), when there is one."""
    if not evaluation_md:
        return []
    table = Path(evaluation_md).read_text(encoding="utf-8").splitlines()
    body = table[1:] if table and table[0].startswith("# ") else table
    return [
        "## Evaluation",
        "",
        "CLIP models judged on the configured benchmarks (`snakemake evaluation`; every figure in "
        "`../eval/results.csv`):",
        *body,
        "",
    ]


def write_card(
    manifests: list[str | Path],
    metafiles_dir: str | Path,
    readme: str | Path,
    croissant_path: str | Path,
    config: dict[str, Any],
    settings: CardSettings,
    absent: dict[str, str] | None,
    decontamination_csv: str | Path | None,
    evaluation_md: str | Path | None,
) -> None:
    """Write README.md and croissant.json beside the shards; with `card.validate`, check the latter.
    `decontamination_csv` (results/stats/decontamination.csv) adds the eval sets checked to the card;
    `evaluation_md` (results/eval/results.md, once `snakemake evaluation` has run) an Evaluation section.

    `absent`: {subset: why} for a subset this build does not hold; the card says so.

    Validation needs the `mlcroissant` package; without it the check is skipped with a warning.
    """
    config = json.loads(json.dumps(dict(config)))  # Snakemake's config: plain types for YAML
    loaded = [Manifest.read(path) for path in manifests]
    loaded.sort(key=lambda m: SUBSETS.index(m.subset))
    shards_dir = Path(croissant_path).parent
    section = decontamination_lines(decontamination_csv, config.get("decontamination"))
    evaluation = evaluation_lines(evaluation_md)
    Path(readme).write_text(
        readme_text(loaded, config, software_versions(), absent, section, evaluation), encoding="utf-8"
    )
    card = settings.card
    description = card.description + "".join(
        f" The {subset} subset is absent from this build: {why}." for subset, why in sorted((absent or {}).items())
    )
    document = croissant(
        loaded,
        shards_dir,
        Path(metafiles_dir),
        card.name,
        description,
        card.license,
        card.url,
        card.version,
    )
    Path(croissant_path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if card.validate:
        try:
            errors = validate_croissant(croissant_path)
        except ImportError:
            logging.getLogger(__name__).warning("mlcroissant is not installed: croissant.json not validated")
            return
        if errors:
            raise ValueError("croissant.json does not validate:\n" + "\n".join(errors))


def validate_croissant(path: str | Path) -> list[str]:
    """Errors mlcroissant reports for the file (empty when valid); raises ImportError without it."""
    import mlcroissant

    try:
        mlcroissant.Dataset(jsonld=str(path))
    except mlcroissant.ValidationError as error:
        return [line for line in str(error).splitlines() if line.strip()]
    return []
