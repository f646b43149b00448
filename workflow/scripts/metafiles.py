from rs5m.adapter import run
from rs5m.assemble.metafiles import write_metafiles

run(
    snakemake,
    write_metafiles,
    pub11_final=snakemake.input.pub11,
    rs3_final=snakemake.input.rs3,
    places=snakemake.input.places,
    out_dir=snakemake.params.out_dir,
    val_fraction=snakemake.params.val_fraction,
    pub11_meta=snakemake.input.pub11_meta,
    pub11_caption=snakemake.params.pub11_caption,
)
