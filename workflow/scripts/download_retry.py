from rs5m.adapter import run
from rs5m.pub11.download_retry import DownloadSettings, retry_failed

run(
    snakemake,
    retry_failed,
    urls=snakemake.input.urls,
    out_dir=snakemake.input.shards,
    stats=snakemake.params.stats,
    drops=snakemake.params.drops,
    report=snakemake.output.report,
    threads=snakemake.threads,
    settings=DownloadSettings(**snakemake.params.settings),
)
