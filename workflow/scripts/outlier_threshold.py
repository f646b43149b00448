from rs5m.adapter import run
from rs5m.pub11.outlier_threshold import apply_outlier_threshold
from rs5m.pub11.settings import ThresholdSettings

run(
    snakemake,
    apply_outlier_threshold,
    kept=snakemake.input.kept,
    scores=list(snakemake.input.scores),
    out=snakemake.output.final,
    thresholds_out=snakemake.output.thresholds,
    settings=ThresholdSettings.from_config(snakemake.params),
)
