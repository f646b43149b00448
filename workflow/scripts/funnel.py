from rs5m.adapter import run
from rs5m.assemble.funnel import write_run_stats

run(
    snakemake,
    write_run_stats,
    stats_files=list(snakemake.input.stats),
    file_accounts=list(snakemake.input.files),
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_json=snakemake.output.json,
    out_input_files=snakemake.output.input_files,
)
