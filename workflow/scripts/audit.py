from rs5m.adapter import run
from rs5m.assemble.audit import write_audit

run(
    snakemake,
    write_audit,
    run_dir=".",
    report=snakemake.output[0],
    stage_order=snakemake.params.stage_order or None,
    verify_images=snakemake.params.verify_images,
    ledger=list(snakemake.input.ledger) + list(snakemake.input.drops),
    absent=snakemake.params.absent,
)
