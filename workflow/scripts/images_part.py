from rs5m.adapter import run
from rs5m.pub11.images_part import inspect_part

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
