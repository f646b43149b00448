from rs5m.adapter import run
from rs5m.rs3.rs3_read_bigearthnet import read_bigearthnet

run(
    snakemake,
    read_bigearthnet,
    roots=list(snakemake.params.roots),
    out_path=snakemake.output.table,
    mapping_path=snakemake.output.mapping,
    image_dir=snakemake.output.images,
    split=snakemake.params.split,
    version=snakemake.params.version,
    reflectance_clip=tuple(snakemake.params.reflectance_clip),
    jpeg_quality=snakemake.params.jpeg_quality,
    threads=snakemake.threads,
)
