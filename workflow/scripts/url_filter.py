from rs5m.adapter import run
from rs5m.pub11.settings import UrlFilterSettings
from rs5m.pub11.url_filter import filter_and_dedup_urls

run(
    snakemake,
    filter_and_dedup_urls,
    metadata=list(snakemake.input.metadata),
    parts=list(snakemake.output.parts),
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    settings=UrlFilterSettings(**snakemake.params.settings),
    threads=snakemake.threads,
    memory_limit=snakemake.params.memory_limit,
)
