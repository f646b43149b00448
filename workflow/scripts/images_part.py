from rs5m.adapter import run
from rs5m.images import inspect_part

run(
    snakemake,
    inspect_part,
    download=snakemake.input.shards,
    out=snakemake.output.images,
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    threads=snakemake.threads,
    **snakemake.params.options,
)
