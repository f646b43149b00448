from rs5m.adapter import run
from rs5m.evaluation.evaluate import evaluate
from rs5m.evaluation.settings import EvaluateSettings

run(
    snakemake,
    evaluate,
    output=snakemake.output[0],
    benchmark=snakemake.wildcards.benchmark,
    benchmark_settings=dict(snakemake.params.benchmark),
    model_name=snakemake.wildcards.model,
    model_settings=dict(snakemake.params.model),
    settings=EvaluateSettings.from_config(snakemake.params),
    workers=snakemake.threads,
)
