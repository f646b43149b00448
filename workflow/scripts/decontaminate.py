from rs5m.adapter import run
from rs5m.decontamination.decontaminate import decontaminate
from rs5m.decontamination.settings import DecontaminationSettings

subset = "pub11" if snakemake.rule.endswith("pub11") else "rs3"
tables = snakemake.input.scores if subset == "pub11" else snakemake.input.features
run(
    snakemake,
    decontaminate,
    subset=subset,
    table_path=snakemake.input.table,
    out=snakemake.output.final,
    stats_out=snakemake.output.stats,
    drops_out=snakemake.output.drops,
    matches_out=snakemake.output.matches,
    eval_tables=list(snakemake.input.evals),
    embedding_parts=list(zip(tables, snakemake.input.embeddings)),
    phash_parts=[] if subset == "pub11" else list(snakemake.input.features),
    settings=DecontaminationSettings.from_config(snakemake.params),
)
