from rs5m.adapter import run
from rs5m.rs3.rs3_read_bigearthnet import read_bigearthnet
from rs5m.rs3.settings import BigEarthNetSettings

run(
    snakemake,
    read_bigearthnet,
    roots=list(snakemake.params.roots),
    out_path=snakemake.output.table,
    mapping_path=snakemake.output.mapping,
    image_dir=snakemake.output.images,
    settings=BigEarthNetSettings.from_config(snakemake.params),
    threads=snakemake.threads,
)
