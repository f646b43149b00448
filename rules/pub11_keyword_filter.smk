# PUB11 stage 1: keyword filtering of the sources' native metadata, one job per chunk of files.

from rs5m.pub11.settings import SourceSettings


rule keyword_filter:
    input:
        files=chunk_files,
        keywords=repo_path(config["keywords"]),
        index_file=source_index_file,
    output:
        kept="results/pub11/metadata/{source}/{chunk}.parquet",
        stats="results/pub11/metadata/{source}/{chunk}.stats.json",
        drops="results/pub11/metadata/{source}/{chunk}.drops.parquet",
        files="results/pub11/metadata/{source}/{chunk}.files.json",
    log:
        "logs/keyword_filter/{source}/{chunk}.log",
    benchmark:
        "results/benchmarks/keyword_filter/{source}/{chunk}.tsv"
    conda:
        "../envs/pub11.yaml"
    threads: config["metadata"]["threads"]  # DuckDB threads; an upper bound, clamped by --cores
    resources:
        mem_mb=4000,
    params:
        # rs5m.pub11.settings.SourceSettings: the keys of sources.<source> that the filter reads
        source_settings=lambda wildcards: SourceSettings.from_source(
            config, wildcards.source
        ).as_params(),
        metadata=config["metadata"],  # rs5m.pub11.settings.MetadataSettings
        # DuckDB spills beyond this: 3/4 of the job's memory (rs5m.duck).
        memory_limit=lambda wildcards, resources: memory_limit_for(resources.mem_mb),
    script:
        "../workflow/scripts/keyword_filter.py"
