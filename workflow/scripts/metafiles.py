from rs5m.adapter import run
from rs5m.assemble.metafiles import write_metafiles
from rs5m.assemble.settings import MetafileSettings

run(
    snakemake,
    write_metafiles,
    pub11_final=snakemake.input.pub11 or None,  # an empty input: a subset this build does not hold
    rs3_final=snakemake.input.rs3 or None,
    places=snakemake.input.places or None,
    out_dir=snakemake.params.out_dir,
    pub11_meta=snakemake.input.pub11_meta or None,
    settings=MetafileSettings.from_config(snakemake.params),
)
