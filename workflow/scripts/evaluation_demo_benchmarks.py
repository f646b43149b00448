from rs5m.adapter import run
from rs5m.demo.evaluation_demo_benchmarks import evaluation_demo_benchmarks

run(snakemake, evaluation_demo_benchmarks, output_dir=snakemake.output[0], seed=snakemake.params.seed)
