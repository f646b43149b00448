from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/pub11_metadata.smk"
include: "rules/stats.smk"


rule all:
    input:
        keyword_outputs("parquet"),
        "results/stats/funnel.md",
    default_target: True


localrules:
    all,
    funnel,
