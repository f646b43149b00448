from rs5m.adapter import run
from rs5m.demo.demo_metadata import write_demo_inputs

run(
    snakemake,
    write_demo_inputs,
    root=snakemake.params.root,
    seed=snakemake.params.seed,
    rows_per_source=snakemake.params.rows_per_source,
)
