from rs5m.adapter import run
from rs5m.rs3.rs3_metacaption import rs3_metacaptions
from rs5m.settings import MetacaptionSettings

run(
    snakemake,
    rs3_metacaptions,
    read_tables=list(snakemake.input.tables),
    out_paths=list(snakemake.output.parts),
    settings=MetacaptionSettings.from_config(snakemake.params),
)
