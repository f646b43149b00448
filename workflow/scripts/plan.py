from rs5m.adapter import run
from rs5m.plan.plan import write_plan
from rs5m.plan.settings import PlanSettings

run(
    snakemake,
    write_plan,
    run_dir=".",
    snakefile=snakemake.params.snakefile,
    configfiles=list(snakemake.params.configfiles),
    out_md=snakemake.output.md,
    out_json=snakemake.output.json,
    out_png=snakemake.output.hosts,
    settings=PlanSettings(**snakemake.params.settings),
    published=False,
    url_sample=None,
)
