# Assembly: split, WebDataset shards, CSV metafiles, dataset statistics, dataset card and audit.
#
# Static fan-out: how many tars a subset gets follows the bytes that survive filtering, known only
# when its job runs (unless `shards.count` fixes it). One job per subset therefore writes all of that
# subset's tars, train and val, and declares its manifest (which lists every tar with its count,
# size and sha256) as the output; the job deletes stale tars of its subset first and writes each tar
# under a temporary name, so a rerun after a crash (`--rerun-incomplete`) writes the same bytes.
# Later rules read the manifests.

# A build with only PUB11 sources or only RS3 datasets assembles its one subset; the card and the
# audit name the absent one and why (ABSENT_SUBSETS). Inputs of an absent subset are empty lists.
ABSENT_SUBSETS = absent_subsets()
ASSEMBLY_SUBSETS = [s for s in ["pub11", "rs3"] if s not in ABSENT_SUBSETS]
# shards.jobs > 1: shards_part jobs write the groups of a subset's tars in parallel (each plans
# the whole subset from sizes, then writes its contiguous range), and `shards` merges their parts.
SHARD_JOBS = config["shards"]["jobs"]
METAFILES = [
    path
    for path, subset in (
        ("results/metafiles/pub11_train_metadata.csv", "pub11"),
        ("results/metafiles/pub11_validation_metadata.csv", "pub11"),
        ("results/metafiles/rs3_train_val_metadata.csv", "rs3"),
        ("results/metafiles/pub11_NER_geolocation_info.csv", "pub11"),
    )
    if subset in ASSEMBLY_SUBSETS
]


wildcard_constraints:
    subset="pub11|rs3",
    group=r"\d+",


report: "../workflow/report/workflow.rst"


rule shards_part:
    input:
        final="results/{subset}/final.parquet",
        pub11_meta=subset_meta_captions,
    output:
        part="results/shards/parts/{subset}-{group}.json",
    log:
        "logs/shards/{subset}-{group}.log",
    benchmark:
        "results/benchmarks/shards/{subset}-{group}.tsv"
    conda:
        "../envs/assembly.yaml"
    threads: 3  # the sample builder, the write thread and the hash thread; an upper bound
    params:
        shards_dir=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.part)
        ),
        split=config["split"],  # rs5m.assemble.settings.ShardSettings
        shards=config["shards"],
        metacaption=METACAPTION,
        group=lambda wildcards: int(wildcards.group),
        groups=SHARD_JOBS,
    script:
        "../workflow/scripts/shards.py"


rule shards:
    input:
        final="results/{subset}/final.parquet",
        pub11_meta=subset_meta_captions,
        parts=lambda wildcards: (
            expand(
                "results/shards/parts/{subset}-{group}.json",
                subset=wildcards.subset,
                group=range(SHARD_JOBS),
            )
            if SHARD_JOBS > 1
            else []
        ),
    output:
        manifest="results/shards/{subset}.manifest.json",
    log:
        "logs/shards/{subset}.log",
    benchmark:
        "results/benchmarks/shards/{subset}.tsv"
    conda:
        "../envs/assembly.yaml"
    threads: 3  # the sample builder, the write thread and the hash thread; an upper bound
    params:
        shards_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        split=config["split"],  # rs5m.assemble.settings.ShardSettings
        shards=config["shards"],
        metacaption=METACAPTION,
        group=0,
        groups=1,
    script:
        "../workflow/scripts/shards.py"


rule metafiles:
    input:
        pub11=if_subset("pub11", "results/pub11/final.parquet"),
        rs3=if_subset("rs3", "results/rs3/final.parquet"),
        places=if_subset("pub11", "results/pub11/places.parquet"),
        pub11_meta=if_subset("pub11", "results/pub11/metacaption.parquet"),
    output:
        METAFILES,
    log:
        "logs/metafiles.log",
    conda:
        "../envs/assembly.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        split=config["split"],  # rs5m.assemble.settings.MetafileSettings
        metacaption=METACAPTION,
    script:
        "../workflow/scripts/metafiles.py"


rule dataset_stats:
    input:
        pub11=if_subset("pub11", "results/pub11/final.parquet"),
        rs3=if_subset("rs3", "results/rs3/final.parquet"),
    output:
        rs3_csv="results/stats/rs3_counts.csv",
        rs3_md="results/stats/rs3_counts.md",
        keywords_csv="results/stats/keyword_frequency.csv",
        keywords_png=report(
            "results/stats/keyword_frequency.png",
            caption="../workflow/report/keyword_frequency.rst",
            category="Statistics",
        ),
        sizes_csv="results/stats/image_sizes.csv",
        sizes_png=report(
            "results/stats/image_sizes.png",
            caption="../workflow/report/image_sizes.rst",
            category="Statistics",
        ),
        captions_csv="results/stats/caption_lengths.csv",
        captions_png=report(
            "results/stats/caption_lengths.png",
            caption="../workflow/report/caption_lengths.rst",
            category="Statistics",
        ),
        utm_csv="results/stats/utm_zones.csv",
        utm_png=report(
            "results/stats/utm_zones.png",
            caption="../workflow/report/utm_zones.rst",
            category="Statistics",
        ),
    log:
        "logs/dataset_stats.log",
    conda:
        "../envs/assembly.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.rs3_csv),
        split=config["split"],  # rs5m.assemble.settings.StatsSettings
    script:
        "../workflow/scripts/dataset_stats.py"


rule dataset_card:
    input:
        manifests=expand(
            "results/shards/{subset}.manifest.json", subset=ASSEMBLY_SUBSETS
        ),
        metafiles=METAFILES,
        decontamination="results/stats/decontamination.csv",
        # The Evaluation section, once `snakemake evaluation` has written the table.
        evaluation=lambda wildcards: card_evaluation_table(),
    output:
        readme=report(
            "results/shards/README.md",
            caption="../workflow/report/dataset_card.rst",
            category="Dataset",
        ),
        croissant="results/shards/croissant.json",
    log:
        "logs/dataset_card.log",
    conda:
        "../envs/assembly.yaml"
    params:
        metafiles_dir=lambda wildcards, input: os.path.dirname(input.metafiles[0]),
        card=config["card"],  # rs5m.assemble.settings.CardSettings
        absent=ABSENT_SUBSETS,
    script:
        "../workflow/scripts/dataset_card.py"


rule audit:
    input:
        manifests=expand(
            "results/shards/{subset}.manifest.json", subset=ASSEMBLY_SUBSETS
        ),
        funnel="results/stats/funnel.json",
        # Only these ledger files are read (not whatever an older run left under results/).
        ledger=ledger_files(),
        drops=[p.replace(".stats.json", ".drops.parquet") for p in ledger_files()],
    output:
        report(
            "results/stats/audit.json",
            caption="../workflow/report/audit.rst",
            category="Dataset",
        ),
    log:
        "logs/audit.log",
    conda:
        "../envs/assembly.yaml"
    resources:
        # Shards are streamed (one sample at a time); the final tables' uids are held.
        mem_mb=4000,
    params:
        audit=config["audit"],  # rs5m.assemble.settings.AuditSettings
        absent=ABSENT_SUBSETS,
    script:
        "../workflow/scripts/audit.py"


rule assemble:
    input:
        rules.dataset_card.output,
        rules.dataset_stats.output,
        rules.audit.output,
        METAFILES,
        if_subset("pub11", rules.pub11_metacaption.output.stats),
