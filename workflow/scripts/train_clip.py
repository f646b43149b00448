from rs5m.adapter import run
from rs5m.evaluation.settings import TrainSettings
from rs5m.evaluation.train_clip import train_clip_launch

run(
    snakemake,
    train_clip_launch,
    output=snakemake.output[0],
    manifests=list(snakemake.input.manifests),
    settings=TrainSettings.from_config(snakemake.params),
    workers=snakemake.threads,
)
