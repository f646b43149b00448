from pathlib import Path

from rs5m.adapter import run
from rs5m.evaluation.evaluation_table import evaluation_table
from rs5m.evaluation.settings import TableSettings

run(
    snakemake,
    evaluation_table,
    records=list(snakemake.input),
    output_dir=str(Path(snakemake.output.json).parent),
    settings=TableSettings.from_config(snakemake.params),
)
