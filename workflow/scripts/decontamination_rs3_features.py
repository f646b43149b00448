from rs5m.adapter import run
from rs5m.decontamination.decontamination_rs3_features import rs3_features
from rs5m.decontamination.settings import FeatureSettings

run(
    snakemake,
    rs3_features,
    part=snakemake.input.part,
    out=snakemake.output.table,
    embeddings_out=snakemake.output.embeddings,
    workers=snakemake.threads,
    settings=FeatureSettings.from_config(snakemake.params),
)
