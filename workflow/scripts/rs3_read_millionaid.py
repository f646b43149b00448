import os

from rs5m.adapter import run
from rs5m.rs3.rs3_read_millionaid import read_millionaid
from rs5m.rs3.settings import MillionAidSettings

run(
    snakemake,
    read_millionaid,
    root=os.path.normpath(os.path.join(snakemake.input.root, snakemake.params.subpath)),
    out_path=snakemake.output.table,
    settings=MillionAidSettings.from_config(snakemake.params),
    threads=snakemake.threads,
)
