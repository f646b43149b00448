from rs5m.adapter import run
from rs5m.decontamination.decontamination_report import write_report

run(
    snakemake,
    write_report,
    eval_tables=list(snakemake.input.evals),
    matches=list(snakemake.input.matches),
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_png=snakemake.output.png,
    formats=dict(snakemake.params.formats),
    actions=dict(snakemake.params.actions),
    phash_radius=snakemake.params.radius,
    embedding_threshold=snakemake.params.threshold,
    clip_model=snakemake.params.clip_model,
    clip_pretrained=snakemake.params.clip_pretrained,
)
