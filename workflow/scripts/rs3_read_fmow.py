from rs5m.adapter import run
from rs5m.rs3.rs3_read_fmow import read_fmow

run(
    snakemake,
    read_fmow,
    root=snakemake.params.root,
    out_path=snakemake.output.table,
    split=snakemake.params.split,
    variants=snakemake.params.variants,
    threads=snakemake.threads,
)
