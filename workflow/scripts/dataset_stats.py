from rs5m.adapter import run
from rs5m.assemble.dataset_stats import write_report
from rs5m.assemble.settings import StatsSettings

run(
    snakemake,
    write_report,
    pub11_final=snakemake.input.pub11 or None,  # an empty input: a subset this build does not hold
    rs3_final=snakemake.input.rs3 or None,
    out_dir=snakemake.params.out_dir,
    settings=StatsSettings.from_config(snakemake.params),
)
