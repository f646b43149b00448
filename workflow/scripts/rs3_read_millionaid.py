import os

from rs5m.adapter import run
from rs5m.rs3.rs3_read_millionaid import read_millionaid

run(
    snakemake,
    read_millionaid,
    root=os.path.normpath(os.path.join(snakemake.input.root, snakemake.params.subpath)),
    out_path=snakemake.output.table,
    split=snakemake.params.split,
    threads=snakemake.threads,
)
