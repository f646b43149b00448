# PUB11 meta-captions (SPEC 4): YFCC place and date, CC3M labels, RedCaps date, for the kept samples.


rule pub11_metacaption:
    input:
        final="results/pub11/final.parquet",
        urldedup=expand("results/pub11/urldedup/{part}.parquet", part=PARTS),
        cc3m_labels=cc3m_labels_file(),
    output:
        table="results/pub11/metacaption.parquet",
        stats="results/stats/pub11_metacaptions.json",
    log:
        "logs/pub11_metacaption.log",
    benchmark:
        "results/benchmarks/pub11_metacaption.tsv"
    conda:
        "../envs/rs3.yaml"
    resources:
        mem_mb=4000,
    params:
        metacaption=METACAPTION,  # rs5m.settings.MetacaptionSettings
        # DuckDB spills beyond this: 3/4 of the job's memory (rs5m.duck).
        memory_limit=lambda wildcards, resources: memory_limit_for(resources.mem_mb),
    script:
        "../workflow/scripts/pub11_metacaption.py"
