from rs5m.adapter import run
from rs5m.decontamination.decontamination_report import write_report
from rs5m.decontamination.settings import DecontaminationSettings

run(
    snakemake,
    write_report,
    eval_tables=list(snakemake.input.evals),
    matches=list(snakemake.input.matches),
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_png=snakemake.output.png,
    formats=dict(snakemake.params.formats),
    settings=DecontaminationSettings.from_config(snakemake.params),
)
