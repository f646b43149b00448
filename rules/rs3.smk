# RS3 (SPEC 3): read fMoW, BigEarthNet and MillionAID, meta-caption them, caption with BLIP-2 and
# rank with two CLIPs, one GPU job per part; gather results/rs3/captioned.parquet (decontamination
# then writes results/rs3/final.parquet).

from rs5m.rs3.settings import (
    BigEarthNetSettings,
    CaptionSettings,
    FmowSettings,
    MillionAidSettings,
)
from rs5m.settings import section_for


rule rs3_read_fmow:
    input:
        root=rs3_input(RS3["fmow"]["root"]),
    output:
        table="results/rs3/read/fmow.parquet",
        stats="results/rs3/read/fmow.stats.json",
        drops="results/rs3/read/fmow.drops.parquet",
    log:
        "logs/rs3_read_fmow.log",
    benchmark:
        "results/benchmarks/rs3_read_fmow.tsv"
    conda:
        "../envs/rs3.yaml"
    threads: RS3["threads"]  # image-header reader threads; an upper bound, clamped by --cores
    params:
        subpath=rs3_root_subpath("fmow", "data/fmow-rgb"),
        rs3=section_for(FmowSettings, config, "rs3"),
    script:
        "../workflow/scripts/rs3_read_fmow.py"


rule rs3_read_bigearthnet:
    input:
        roots=[rs3_input(root) for root in RS3["bigearthnet"]["roots"]],
    output:
        table="results/rs3/read/bigearthnet.parquet",
        stats="results/rs3/read/bigearthnet.stats.json",
        drops="results/rs3/read/bigearthnet.drops.parquet",
        mapping="results/rs3/read/bigearthnet_mapping.parquet",
        images=directory("results/rs3/images/bigearthnet"),
    log:
        "logs/rs3_read_bigearthnet.log",
    benchmark:
        "results/benchmarks/rs3_read_bigearthnet.tsv"
    conda:
        "../envs/rs3.yaml"
    threads: RS3["threads"]  # GeoTIFF reader threads; an upper bound, clamped by --cores
    params:
        roots=RS3["bigearthnet"]["roots"],
        rs3=section_for(BigEarthNetSettings, config, "rs3"),
    script:
        "../workflow/scripts/rs3_read_bigearthnet.py"


rule rs3_read_millionaid:
    input:
        root=rs3_input(RS3["millionaid"]["root"]),
    output:
        table="results/rs3/read/millionaid.parquet",
        stats="results/rs3/read/millionaid.stats.json",
        drops="results/rs3/read/millionaid.drops.parquet",
    log:
        "logs/rs3_read_millionaid.log",
    benchmark:
        "results/benchmarks/rs3_read_millionaid.tsv"
    conda:
        "../envs/rs3.yaml"
    threads: RS3["threads"]  # image-header reader threads; an upper bound, clamped by --cores
    params:
        subpath=rs3_root_subpath("millionaid", "data/millionaid"),
        rs3=section_for(MillionAidSettings, config, "rs3"),
    script:
        "../workflow/scripts/rs3_read_millionaid.py"


# Any labelled RS archive (rs3.datasets entries with a `format`), one job per archive.
rule rs3_read_archive:
    input:
        root=lambda wildcards: rs3_input(RS3_ARCHIVES[wildcards.dataset]["root"]),
    output:
        table="results/rs3/read/{dataset}.parquet",
        stats="results/rs3/read/{dataset}.stats.json",
        drops="results/rs3/read/{dataset}.drops.parquet",
        images=directory("results/rs3/images/{dataset}"),
    log:
        "logs/rs3_read_archive/{dataset}.log",
    benchmark:
        "results/benchmarks/rs3_read_archive/{dataset}.tsv"
    wildcard_constraints:
        dataset=RS3_ARCHIVE_PATTERN,
    conda:
        "../envs/rs3.yaml"
    threads: RS3["threads"]  # image and GeoTIFF reader threads; an upper bound, clamped by --cores
    params:
        dataset=lambda wildcards: RS3_ARCHIVES[wildcards.dataset],  # rs5m.rs3.settings.ArchiveSettings
    script:
        "../workflow/scripts/rs3_read_archive.py"


rule rs3_metacaption:
    input:
        tables=rs3_read_outputs(),
    output:
        parts=expand("results/rs3/metacaption/{part}.parquet", part=PARTS),
    log:
        "logs/rs3_metacaption.log",
    benchmark:
        "results/benchmarks/rs3_metacaption.tsv"
    conda:
        "../envs/rs3.yaml"
    params:
        metacaption=METACAPTION,  # rs5m.settings.MetacaptionSettings
    script:
        "../workflow/scripts/rs3_metacaption.py"


rule rs3_caption:
    input:
        part="results/rs3/metacaption/{part}.parquet",
        models=rs3_model_files(),
    output:
        table="results/rs3/caption/{part}.parquet",
        candidates="results/rs3/caption/{part}.candidates.parquet",
        stats="results/rs3/caption/{part}.stats.json",
        drops="results/rs3/caption/{part}.drops.parquet",
    log:
        "logs/rs3_caption/{part}.log",
    benchmark:
        "results/benchmarks/rs3_caption/{part}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4  # image decoding and rotation next to one GPU; an upper bound, clamped by --cores
    resources:
        gpu=1,
        mem_mb=32000,
    params:
        caption=section_for(CaptionSettings, config, "caption"),
    script:
        "../workflow/scripts/rs3_caption.py"


rule rs3_final:
    input:
        parts=rs3_caption_outputs(),
    output:
        "results/rs3/captioned.parquet",
    log:
        "logs/rs3_final.log",
    conda:
        "../envs/rs3.yaml"
    script:
        "../workflow/scripts/rs3_final.py"
