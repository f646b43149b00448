# PUB11 URL safety + URL dedup over all sources, then one img2dataset download job per part.
# Retrying only the failed URLs of every part (then `snakemake` reruns what depends on them):
#   snakemake --cores 4 retry_failed_downloads --forcerun download_retry


# img2dataset settings of config `download` (its processes are the rules' threads) + the pixel cap.
DOWNLOAD_OPTIONS = {
    **{k: v for k, v in config["download"].items() if k != "processes"},
    "max_pixels": config["images"]["max_pixels"],
}


rule url_filter:
    input:
        metadata=keyword_outputs("parquet"),
    output:
        parts=expand("results/pub11/urldedup/{part}.parquet", part=PARTS),
        stats="results/pub11/urldedup.stats.json",
        drops="results/pub11/urldedup.drops.parquet",
    log:
        "logs/url_filter.log",
    benchmark:
        "results/benchmarks/url_filter.tsv"
    conda:
        "../envs/pub11.yaml"
    threads: config["urls"]["threads"]  # DuckDB threads; an upper bound, clamped by --cores
    resources:
        mem_mb=16000,
    params:
        allow_loopback=config["urls"]["allow_loopback"],
        # DuckDB spills beyond this: the configured limit, else 3/4 of the job's memory.
        memory_limit=lambda wildcards, resources: config["urls"]["memory_limit"]
        or f"{resources.mem_mb * 3 // 4}MB",
    script:
        "../workflow/scripts/url_filter.py"


rule download_part:
    input:
        urls="results/pub11/urldedup/{part}.parquet",
    output:
        shards=directory("results/pub11/download/{part}"),
        stats="results/pub11/download/{part}.stats.json",
        drops="results/pub11/download/{part}.drops.parquet",
    log:
        "logs/download_part/{part}.log",
    benchmark:
        "results/benchmarks/download_part/{part}.tsv"
    conda:
        "../envs/pub11.yaml"
    threads: config["download"]["processes"]  # img2dataset processes; an upper bound, clamped by --cores
    params:
        options=DOWNLOAD_OPTIONS,
    script:
        "../workflow/scripts/download_part.py"


# Opt-in: fetches again only the URLs of a part whose latest attempt failed, into new shards of
# the same folder, and rewrites the part's download ledger; the folder is then newer than what
# was made from it, so the next `snakemake` reruns the image checks and dedup.
rule download_retry:
    input:
        urls="results/pub11/urldedup/{part}.parquet",
        shards="results/pub11/download/{part}",
    output:
        report="results/pub11/download/{part}.retry.json",
    log:
        "logs/download_retry/{part}.log",
    conda:
        "../envs/pub11.yaml"
    threads: config["download"]["processes"]  # img2dataset processes; an upper bound, clamped by --cores
    params:
        stats="results/pub11/download/{part}.stats.json",
        drops="results/pub11/download/{part}.drops.parquet",
        options=DOWNLOAD_OPTIONS,
    script:
        "../workflow/scripts/download_retry.py"


rule retry_failed_downloads:
    input:
        expand("results/pub11/download/{part}.retry.json", part=PARTS),


if SOURCES:
    LEDGER_FILES.append("results/pub11/urldedup.stats.json")
    LEDGER_FILES.extend(expand("results/pub11/download/{part}.stats.json", part=PARTS))
