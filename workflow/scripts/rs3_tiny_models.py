from rs5m.adapter import run
from rs5m.demo.rs3_tiny_models import build_tiny_models

run(
    snakemake,
    build_tiny_models,
    blip2_path=snakemake.output.blip2,
    clip_paths={snakemake.params.clip_a: snakemake.output.clip_a, snakemake.params.clip_b: snakemake.output.clip_b},
    seed=snakemake.params.seed,
)
