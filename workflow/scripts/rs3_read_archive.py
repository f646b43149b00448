from rs5m.adapter import run
from rs5m.rs3.rs3_read_archive import read_archive

run(
    snakemake,
    read_archive,
    dataset=snakemake.wildcards.dataset,
    root=snakemake.input.root,
    out_path=snakemake.output.table,
    image_dir=snakemake.output.images,
    archive_format=snakemake.params.format,
    table=snakemake.params.table,
    bands=snakemake.params.bands,
    reflectance_clip=snakemake.params.reflectance_clip,
    jpeg_quality=snakemake.params.jpeg_quality,
    threads=snakemake.threads,
)
