# PUB11 invalid-image removal and pHash per download part, then global near-duplicate removal.


rule images_part:
    input:
        shards="results/pub11/download/{part}",
        # Rewritten by download_retry, so a retry makes this part's image check (and dedup) rerun.
        ledger="results/pub11/download/{part}.stats.json",
    output:
        images="results/pub11/images/{part}.parquet",
        stats="results/pub11/images/{part}.stats.json",
        drops="results/pub11/images/{part}.drops.parquet",
    log:
        "logs/images_part/{part}.log",
    benchmark:
        "results/benchmarks/images_part/{part}.tsv"
    conda:
        "../envs/pub11.yaml"
    threads: config["images"]["processes"]  # decode + pHash processes; an upper bound, clamped by --cores
    params:
        images=config["images"],  # rs5m.pub11.settings.ImageSettings
    script:
        "../workflow/scripts/images_part.py"


rule image_dedup:
    input:
        images=expand("results/pub11/images/{part}.parquet", part=PARTS),
        urls=expand("results/pub11/urldedup/{part}.parquet", part=PARTS),
        # the candidate pairs' images are read from the shards to confirm them
        shards=expand("results/pub11/download/{part}", part=PARTS),
    output:
        kept="results/pub11/dedup/kept.parquet",
        stats="results/pub11/dedup/kept.stats.json",
        drops="results/pub11/dedup/kept.drops.parquet",
        pairs="results/pub11/dedup/pairs.parquet",
    log:
        "logs/image_dedup.log",
    benchmark:
        "results/benchmarks/image_dedup.tsv"
    conda:
        "../envs/pub11.yaml"
    threads: config["dedup"]["threads"]  # DuckDB threads; an upper bound, clamped by --cores
    resources:
        mem_mb=16000,
    params:
        dedup=config["dedup"],  # rs5m.pub11.settings.DedupSettings
        # DuckDB spills beyond this: 3/4 of the job's memory.
        memory_limit=lambda wildcards, resources: memory_limit_for(resources.mem_mb),
    script:
        "../workflow/scripts/image_dedup.py"
