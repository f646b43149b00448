from rs5m.adapter import run
from rs5m.assemble.settings import ShardSettings
from rs5m.assemble.shards import shards_job

run(
    snakemake,
    shards_job,
    parts=list(snakemake.input.get("parts", [])),
    manifest=snakemake.output[0],
    shards_dir=snakemake.params.shards_dir,
    subset=snakemake.wildcards.subset,
    final=snakemake.input.final,
    settings=ShardSettings.from_config(snakemake.params),
    pub11_meta=snakemake.input.pub11_meta[0] if snakemake.input.pub11_meta else None,
    group=snakemake.params.group,
    groups=snakemake.params.groups,
)
