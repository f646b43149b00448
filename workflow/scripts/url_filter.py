from rs5m.adapter import run
from rs5m.pub11.url_filter import filter_and_dedup_urls

run(
    snakemake,
    filter_and_dedup_urls,
    metadata=list(snakemake.input.metadata),
    parts=list(snakemake.output.parts),
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    threads=snakemake.threads,
    allowed=snakemake.params.allowed,
    blocked_suffixes=snakemake.params.blocked_suffixes,
    max_length=snakemake.params.max_length,
    parts_per_host=snakemake.params.parts_per_host,
    sha256_columns=snakemake.params.sha256_columns,
    phash_columns=snakemake.params.phash_columns,
    memory_limit=snakemake.params.memory_limit,
)
