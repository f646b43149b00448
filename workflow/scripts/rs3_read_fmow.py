import os

from rs5m.adapter import run
from rs5m.rs3.rs3_read_fmow import read_fmow
from rs5m.rs3.settings import FmowSettings

run(
    snakemake,
    read_fmow,
    root=os.path.normpath(os.path.join(snakemake.input.root, snakemake.params.subpath)),
    out_path=snakemake.output.table,
    settings=FmowSettings.from_config(snakemake.params),
    threads=snakemake.threads,
)
