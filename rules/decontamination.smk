# Eval-set decontamination: match the kept PUB11 and RS3 images against benchmark images (pHash of
# the eight rotations/flips of each eval image, and the scoring CLIP's image embeddings), then drop
# (ledger reason eval_overlap) or report the matches, per subset, before assembly. Writes
# results/{pub11,rs3}/final.parquet and results/stats/decontamination.{csv,md} + pairs figure.

from rs5m.decontamination.settings import DecontaminationSettings, FeatureSettings
from rs5m.settings import section_for


rule decontamination_eval:
    input:
        paths=eval_set_inputs,
        clip=outlier_clip_checkpoint(),
    output:
        table="results/decontamination/eval/{eval_set}.parquet",
        embeddings="results/decontamination/eval/{eval_set}.npy",
    log:
        "logs/decontamination_eval/{eval_set}.log",
    benchmark:
        "results/benchmarks/decontamination_eval/{eval_set}.tsv"
    conda:
        "../envs/models.yaml"
    threads: max(1, DECONTAMINATION["workers"])  # image decode workers; an upper bound
    resources:
        gpu=1,
    params:
        paths=lambda wildcards: EVAL_SETS[wildcards.eval_set]["paths"],
        fmt=lambda wildcards: EVAL_SETS[wildcards.eval_set]["format"],
        decontamination=section_for(FeatureSettings, config, "decontamination"),
        outliers=section_for(FeatureSettings, config, "outliers"),
    script:
        "../workflow/scripts/decontamination_eval.py"


rule decontamination_rs3_features:
    input:
        part="results/rs3/caption/{part}.parquet",
        clip=outlier_clip_checkpoint(),
    output:
        table="results/decontamination/rs3/{part}.parquet",
        embeddings="results/decontamination/rs3/{part}.npy",
    log:
        "logs/decontamination_rs3_features/{part}.log",
    benchmark:
        "results/benchmarks/decontamination_rs3_features/{part}.tsv"
    conda:
        "../envs/models.yaml"
    threads: max(1, DECONTAMINATION["workers"])  # image decode workers; an upper bound
    resources:
        gpu=1,
    params:
        decontamination=section_for(FeatureSettings, config, "decontamination"),
        outliers=section_for(FeatureSettings, config, "outliers"),
    script:
        "../workflow/scripts/decontamination_rs3_features.py"


rule decontaminate_pub11:
    input:
        table="results/pub11/outliers.parquet",
        scores=expand("results/pub11/scores/{part}.parquet", part=PARTS),
        embeddings=expand("results/pub11/embeddings/{part}.npy", part=PARTS),
        evals=eval_tables(),
    output:
        final="results/pub11/final.parquet",
        stats="results/pub11/final.stats.json",
        drops="results/pub11/final.drops.parquet",
        matches="results/decontamination/pub11.matches.parquet",
    log:
        "logs/decontaminate_pub11.log",
    conda:
        "../envs/models.yaml"
    resources:
        mem_mb=16000,
    params:
        decontamination=section_for(DecontaminationSettings, config, "decontamination"),
        outliers=section_for(DecontaminationSettings, config, "outliers"),
    script:
        "../workflow/scripts/decontaminate.py"


rule decontaminate_rs3:
    input:
        table="results/rs3/captioned.parquet",
        features=rs3_decontamination_features("parquet"),
        embeddings=rs3_decontamination_features("npy"),
        evals=eval_tables(),
    output:
        final="results/rs3/final.parquet",
        stats="results/rs3/final.stats.json",
        drops="results/rs3/final.drops.parquet",
        matches="results/decontamination/rs3.matches.parquet",
    log:
        "logs/decontaminate_rs3.log",
    conda:
        "../envs/models.yaml"
    params:
        decontamination=section_for(DecontaminationSettings, config, "decontamination"),
        outliers=section_for(DecontaminationSettings, config, "outliers"),
    script:
        "../workflow/scripts/decontaminate.py"


rule decontamination_report:
    input:
        evals=eval_tables(),
        matches=decontamination_matches(),
    output:
        csv="results/stats/decontamination.csv",
        md="results/stats/decontamination.md",
        png=report(
            "results/stats/decontamination_pairs.png",
            caption="../workflow/report/decontamination_pairs.rst",
            category="Statistics",
        ),
    log:
        "logs/decontamination_report.log",
    conda:
        "../envs/pub11.yaml"
    params:
        formats={name: settings["format"] for name, settings in EVAL_SETS.items()},
        decontamination=section_for(DecontaminationSettings, config, "decontamination"),
        outliers=section_for(DecontaminationSettings, config, "outliers"),
    script:
        "../workflow/scripts/decontamination_report.py"
