from rs5m.adapter import run
from rs5m.shards import write_subset_shards

run(
    snakemake,
    write_subset_shards,
    subset=snakemake.wildcards.subset,
    final=snakemake.input.final,
    shards_dir=snakemake.params.shards_dir,
    manifest=snakemake.output.manifest,
    val_fraction=snakemake.params.val_fraction,
    target_bytes=snakemake.params.target_bytes,
    count=snakemake.params.count,
    member_names=snakemake.params.member_names,
    pub11_meta=snakemake.input.pub11_meta[0] if snakemake.input.pub11_meta else None,
    pub11_caption=snakemake.params.pub11_caption,
)
