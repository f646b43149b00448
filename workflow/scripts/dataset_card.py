from rs5m.adapter import run
from rs5m.assemble.dataset_card import write_card
from rs5m.assemble.settings import CardSettings

run(
    snakemake,
    write_card,
    manifests=list(snakemake.input.manifests),
    metafiles_dir=snakemake.params.metafiles_dir,
    readme=snakemake.output.readme,
    croissant_path=snakemake.output.croissant,
    config=snakemake.config,
    settings=CardSettings.from_config(snakemake.params),
    absent=snakemake.params.absent,
    decontamination_csv=snakemake.input.decontamination,
    evaluation_md=snakemake.input.evaluation[0] if snakemake.input.evaluation else None,
)
