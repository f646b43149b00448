from rs5m.adapter import run
from rs5m.rs3.rs3_caption import caption_part
from rs5m.rs3.settings import CaptionSettings

run(
    snakemake,
    caption_part,
    in_path=snakemake.input.part,
    out_path=snakemake.output.table,
    candidates_path=snakemake.output.candidates,
    settings=CaptionSettings.from_config(snakemake.params),
)
