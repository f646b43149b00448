from rs5m.adapter import run
from rs5m.evaluation.evaluate import evaluate

run(
    snakemake,
    evaluate,
    output=snakemake.output[0],
    benchmark=snakemake.wildcards.benchmark,
    benchmark_settings=dict(snakemake.params.benchmark),
    model_name=snakemake.wildcards.model,
    model_settings=dict(snakemake.params.model),
    batch_size=snakemake.params.batch_size,
    workers=snakemake.threads,
    device=snakemake.params.device,
    precision=snakemake.params.precision,
)
