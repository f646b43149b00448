# PUB11 place names (SPEC 4): the GPE table of the kept captions, for the assembly's metafile.


rule pub11_places:
    input:
        "results/pub11/final.parquet",
    output:
        "results/pub11/places.parquet",
    log:
        "logs/pub11_places.log",
    benchmark:
        "results/benchmarks/pub11_places.tsv"
    conda:
        "../envs/rs3.yaml"
    params:
        places=config["places"],  # rs5m.pub11.settings.PlaceSettings
    script:
        "../workflow/scripts/pub11_places.py"
