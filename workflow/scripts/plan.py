from rs5m.adapter import run
from rs5m.plan.plan import write_plan

run(
    snakemake,
    write_plan,
    run_dir=".",
    snakefile=snakemake.params.snakefile,
    configfiles=list(snakemake.params.configfiles),
    out_md=snakemake.output.md,
    out_json=snakemake.output.json,
    out_png=snakemake.output.hosts,
    parts=snakemake.params.parts,
    parts_per_host=snakemake.params.parts_per_host,
    per_host_rate=snakemake.params.per_host_rate,
    per_host_burst=snakemake.params.per_host_burst,
    threads=dict(snakemake.params.rule_threads),
    published=False,
    url_sample=None,
)
