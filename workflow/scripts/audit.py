from rs5m.adapter import run
from rs5m.assemble.audit import write_audit
from rs5m.assemble.settings import AuditSettings

run(
    snakemake,
    write_audit,
    run_dir=".",
    report=snakemake.output[0],
    settings=AuditSettings.from_config(snakemake.params),
    ledger=list(snakemake.input.ledger) + list(snakemake.input.drops),
    absent=snakemake.params.absent,
)
