# Assembly: split, WebDataset shards, CSV metafiles, dataset statistics, dataset card and audit.
#
# Static fan-out: how many tars a subset gets follows the bytes that survive filtering, known only
# when its job runs. One job per subset therefore writes all of that subset's tars, train and val,
# and declares its manifest (which lists every tar with its count, size and sha256) as the output;
# the job deletes stale tars of its subset first and writes each tar under a temporary name, so a
# rerun after a crash (`--rerun-incomplete`) writes the same bytes. Later rules read the manifests.

ASSEMBLY_SUBSETS = ["pub11", "rs3"]
METAFILES = [
    "results/metafiles/pub11_train_metadata.csv",
    "results/metafiles/pub11_validation_metadata.csv",
    "results/metafiles/rs3_train_val_metadata.csv",
    "results/metafiles/pub11_NER_geolocation_info.csv",
]


wildcard_constraints:
    subset="pub11|rs3",


report: "../workflow/report/workflow.rst"


rule shards:
    input:
        final="results/{subset}/final.parquet",
        pub11_meta=subset_meta_captions,
    output:
        manifest="results/shards/{subset}.manifest.json",
    log:
        "logs/shards/{subset}.log",
    benchmark:
        "results/benchmarks/shards/{subset}.tsv"
    conda:
        "../envs/assembly.yaml"
    threads: 2  # the sample builder plus the background write-and-hash thread; an upper bound
    params:
        shards_dir=lambda wildcards, output: os.path.dirname(output.manifest),
        val_fraction=config["split"]["val_fraction"],
        target_bytes=config["shards"]["target_bytes"],
        member_names=config["shards"]["member_names"],
        pub11_caption=METACAPTION["pub11_caption"],
    script:
        "../workflow/scripts/shards.py"


rule metafiles:
    input:
        pub11="results/pub11/final.parquet",
        rs3="results/rs3/final.parquet",
        places="results/pub11/places.parquet",
        pub11_meta="results/pub11/metacaption.parquet",
    output:
        METAFILES,
    log:
        "logs/metafiles.log",
    conda:
        "../envs/assembly.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        val_fraction=config["split"]["val_fraction"],
        pub11_caption=METACAPTION["pub11_caption"],
    script:
        "../workflow/scripts/metafiles.py"


rule dataset_stats:
    input:
        pub11="results/pub11/final.parquet",
        rs3="results/rs3/final.parquet",
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
        val_fraction=config["split"]["val_fraction"],
    script:
        "../workflow/scripts/dataset_stats.py"


rule dataset_card:
    input:
        manifests=expand(
            "results/shards/{subset}.manifest.json", subset=ASSEMBLY_SUBSETS
        ),
        metafiles=METAFILES,
        decontamination="results/stats/decontamination.csv",
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
        card=config["card"],
        validate=config["card"]["validate"],
    script:
        "../workflow/scripts/dataset_card.py"


rule audit:
    input:
        manifests=expand(
            "results/shards/{subset}.manifest.json", subset=ASSEMBLY_SUBSETS
        ),
        funnel="results/stats/funnel.json",
        ledger=LEDGER_FILES,
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
    params:
        stage_order=config["audit"]["stage_order"],
        verify_images=config["audit"]["verify_images"],
    script:
        "../workflow/scripts/audit.py"


rule assemble:
    input:
        rules.dataset_card.output,
        rules.dataset_stats.output,
        rules.audit.output,
        METAFILES,
        rules.pub11_metacaption.output.stats,
