from rs5m.adapter import run
from rs5m.demo.decontamination_demo_eval import write_demo_eval_sets

run(
    snakemake,
    write_demo_eval_sets,
    pub11=snakemake.input.pub11,
    rs3=snakemake.input.rs3,
    root=snakemake.output[0],
    seed=snakemake.params.seed,
)
