from rs5m.adapter import run
from rs5m.pub11.images_part import inspect_part
from rs5m.pub11.settings import ImageSettings

run(
    snakemake,
    inspect_part,
    download=snakemake.input.shards,
    out=snakemake.output.images,
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    threads=snakemake.threads,
    settings=ImageSettings.from_config(snakemake.params),
)
