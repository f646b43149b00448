# The build plan: jobs, bytes, CPU/GPU-hours per rule and the crawl's makespan bound by host, from
# the URL filter's output (`snakemake plan`, or `rs5m plan` before anything runs). Not part of `all`.

from rs5m.plan.settings import PlanSettings


rule plan:
    input:
        parts=expand("results/pub11/urldedup/{part}.parquet", part=PARTS),
    output:
        md="results/plan/plan.md",
        json="results/plan/plan.json",
        hosts="results/plan/hosts.png",
    log:
        "logs/plan.log",
    conda:
        "../envs/assembly.yaml"
    params:
        snakefile=workflow.main_snakefile,
        configfiles=list(workflow.overwrite_configfiles),
        settings=PlanSettings.from_config(config).as_params(),  # rs5m.plan.settings.PlanSettings
    script:
        "../workflow/scripts/plan.py"
