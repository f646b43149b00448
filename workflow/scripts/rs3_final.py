from rs5m.adapter import run
from rs5m.rs3.rs3_final import collect_final

run(snakemake, collect_final, part_paths=list(snakemake.input.parts), out_path=snakemake.output[0])
