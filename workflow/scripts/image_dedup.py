from rs5m.adapter import run
from rs5m.pub11.image_dedup import dedup_images
from rs5m.pub11.settings import DedupSettings

run(
    snakemake,
    dedup_images,
    images=list(snakemake.input.images),
    urls=list(snakemake.input.urls),
    kept=snakemake.output.kept,
    stats=snakemake.output.stats,
    drops=snakemake.output.drops,
    pairs=snakemake.output.pairs,
    threads=snakemake.threads,
    memory_limit=snakemake.params.memory_limit,
    settings=DedupSettings.from_config(snakemake.params),
)
