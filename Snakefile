from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default; a --configfile replaces it (schema defaults fill the rest).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/common_rs3.smk"
include: "rules/common_decontamination.smk"
include: "rules/pub11_keyword_filter.smk"
include: "rules/pub11_download.smk"
include: "rules/pub11_dedup.smk"
include: "rules/pub11_outliers.smk"
include: "rules/rs3.smk"
include: "rules/decontamination.smk"
include: "rules/pub11_places.smk"
include: "rules/pub11_metacaption.smk"
include: "rules/assemble_funnel.smk"
include: "rules/assemble.smk"
include: "rules/plan.smk"
include: "rules/common_evaluation.smk"
include: "rules/evaluation.smk"
include: "rules/demo.smk"


rule all:
    default_target: True
    input:
        "results/stats/funnel.md",
        outlier_outputs(),
        rs3_targets(),
        assembly_targets(),
        decontamination_targets(),


localrules:
    all,
    retry_failed_downloads,
    funnel,
    assemble,
    plan,
    evaluation,
    evaluation_table,
