# PUB11 URL safety + URL dedup over all sources, then one img2dataset download job per part.
# Retrying only the failed URLs of every part (then `snakemake` reruns what depends on them):
#   snakemake --cores 4 retry_failed_downloads --forcerun download_retry

from rs5m.pub11.download_part import DownloadSettings
from rs5m.pub11.settings import UrlFilterSettings

# The download stage's settings (rs5m.pub11.download_part.DownloadSettings); one robots.txt per
# origin and one stage-wide schedule per host, shared by parts and retries, and the fetch times per
# host of each part (read by `rs5m status`).
DOWNLOAD_SETTINGS = DownloadSettings.from_config(
    config,
    robots_cache="results/pub11/robots_txt",
    host_schedule="results/pub11/host_schedule",
    host_timing="results/pub11/host_timing",
).as_params()


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
        settings=UrlFilterSettings.from_config(config).as_params(),  # rs5m.pub11.settings.UrlFilterSettings
        # DuckDB spills beyond this: the configured limit, else 3/4 of the job's memory.
        memory_limit=lambda wildcards, resources: config["urls"]["memory_limit"]
        or memory_limit_for(resources.mem_mb),
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
        settings=DOWNLOAD_SETTINGS,
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
        settings=DOWNLOAD_SETTINGS,
    script:
        "../workflow/scripts/download_retry.py"


rule retry_failed_downloads:
    input:
        expand("results/pub11/download/{part}.retry.json", part=PARTS),
