# Statistics over the whole run: the SPEC 2.2 funnel from every stage's ledger files.


rule funnel:
    input:
        stats=ledger_files(),
        files=keyword_outputs("files.json"),
    output:
        csv="results/stats/funnel.csv",
        md="results/stats/funnel.md",
        json="results/stats/funnel.json",
        input_files="results/stats/input_files.csv",
    log:
        "logs/funnel.log",
    conda:
        "../envs/pub11.yaml"
    script:
        "../workflow/scripts/funnel.py"
