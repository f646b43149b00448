from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default; a --configfile replaces it (schema defaults fill the rest).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/pub11_metadata.smk"
include: "rules/pub11_download.smk"
include: "rules/pub11_dedup.smk"
include: "rules/stats.smk"
include: "rules/assemble.smk"


rule all:
    default_target: True
    input:
        keyword_outputs("parquet"),
        "results/pub11/dedup/kept.parquet",
        "results/stats/funnel.md",


localrules:
    all,
    retry_failed_downloads,
    funnel,
    assemble,
