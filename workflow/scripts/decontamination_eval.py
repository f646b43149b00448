from rs5m.adapter import run
from rs5m.decontamination.decontamination_eval import eval_set_features
from rs5m.decontamination.settings import FeatureSettings

run(
    snakemake,
    eval_set_features,
    name=snakemake.wildcards.eval_set,
    paths=list(snakemake.params.paths),
    fmt=snakemake.params.fmt,
    out=snakemake.output.table,
    embeddings_out=snakemake.output.embeddings,
    workers=snakemake.threads,
    settings=FeatureSettings.from_config(snakemake.params),
)
