from rs5m.adapter import run
from rs5m.pub11.settings import DetectorSettings
from rs5m.pub11.train_rs_detector import train_rs_detector

run(
    snakemake,
    train_rs_detector,
    positive_dirs=list(snakemake.input.positives),
    negative_dirs=list(snakemake.input.negatives),
    weights_out=snakemake.output.weights,
    metrics_out=snakemake.output.metrics,
    work_dir=snakemake.output.work,
    workers=snakemake.threads,
    settings=DetectorSettings.from_config(snakemake.params),
)
