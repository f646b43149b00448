from rs5m.adapter import run
from rs5m.rs3.rs3_read_archive import read_archive
from rs5m.rs3.settings import ArchiveSettings

run(
    snakemake,
    read_archive,
    dataset=snakemake.wildcards.dataset,
    root=snakemake.input.root,
    out_path=snakemake.output.table,
    image_dir=snakemake.output.images,
    settings=ArchiveSettings.from_entry(snakemake.params.dataset),
    threads=snakemake.threads,
)
