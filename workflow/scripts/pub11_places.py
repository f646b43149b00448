from rs5m.adapter import run
from rs5m.pub11.pub11_places import places_table

run(
    snakemake,
    places_table,
    in_path=snakemake.input[0],
    out_path=snakemake.output[0],
    spacy_model=snakemake.params.spacy_model,
    min_population=snakemake.params.min_population,
)
