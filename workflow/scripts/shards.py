from rs5m.adapter import run
from rs5m.assemble.shards import shards_job

run(
    snakemake,
    shards_job,
    parts=list(snakemake.input.get("parts", [])),
    manifest=snakemake.output[0],
    shards_dir=snakemake.params.shards_dir,
    subset=snakemake.wildcards.subset,
    final=snakemake.input.final,
    val_fraction=snakemake.params.val_fraction,
    target_bytes=snakemake.params.target_bytes,
    count=snakemake.params.shard_count,
    member_names=snakemake.params.member_names,
    pub11_meta=snakemake.input.pub11_meta[0] if snakemake.input.pub11_meta else None,
    pub11_caption=snakemake.params.pub11_caption,
    group=snakemake.params.group,
    groups=snakemake.params.groups,
)
