from rs5m.adapter import run
from rs5m.evaluation.train_clip import train_clip_launch

train = snakemake.params.train
run(
    snakemake,
    train_clip_launch,
    gpus=train["gpus"],
    output=snakemake.output[0],
    manifests=list(snakemake.input.manifests),
    model=snakemake.params.model,
    pretrained=snakemake.params.pretrained,
    samples=train["samples"],
    batch_size=train["batch_size"],
    lr=train["lr"],
    weight_decay=train["weight_decay"],
    warmup_samples=train["warmup_samples"],
    shuffle=train["shuffle"],
    checkpoint_every=train["checkpoint_every"],
    seed=train["seed"],
    workers=snakemake.threads,
    device=snakemake.params.device,
    precision=snakemake.params.precision,
)
