from rs5m.adapter import run
from rs5m.pub11.download_part import DownloadSettings, download_part

run(
    snakemake,
    download_part,
    urls=snakemake.input.urls,
    out_dir=snakemake.output.shards,
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    threads=snakemake.threads,
    settings=DownloadSettings(**snakemake.params.settings),
)
