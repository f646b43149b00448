from rs5m.adapter import run
from rs5m.pub11.outlier_qa import outlier_qa
from rs5m.pub11.settings import OutlierSettings

run(
    snakemake,
    outlier_qa,
    kept=snakemake.input.kept,
    scores=list(snakemake.input.scores),
    grid_csv=snakemake.output.csv,
    grid_md=snakemake.output.md,
    grid_png=snakemake.output.png,
    histograms_png=snakemake.output.histograms,
    settings=OutlierSettings.from_config(snakemake.params),
)
