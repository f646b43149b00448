from rs5m.adapter import run
from rs5m.pub11.pub11_places import places_table
from rs5m.pub11.settings import PlaceSettings

run(
    snakemake,
    places_table,
    in_path=snakemake.input[0],
    out_path=snakemake.output[0],
    settings=PlaceSettings.from_config(snakemake.params),
)
