from rs5m.adapter import run
from rs5m.pub11.score_part import score_part
from rs5m.pub11.settings import ScoringSettings

run(
    snakemake,
    score_part,
    kept=snakemake.input.kept,
    part=snakemake.wildcards.part,
    detector_weights=snakemake.input.detector,
    out=snakemake.output.scores,
    embeddings_out=snakemake.output.embeddings,
    workers=snakemake.threads,
    settings=ScoringSettings.from_config(snakemake.params),
)
