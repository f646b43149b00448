from rs5m.adapter import run
from rs5m.demo.rs3_demo_inputs import write_rs3_demo

run(snakemake, write_rs3_demo, root=snakemake.output[0], seed=snakemake.params.seed)
