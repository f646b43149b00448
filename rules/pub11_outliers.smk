# PUB11 outlier removal: CLIP prompt score and RS-detector probability per download part, then the
# joint threshold over the pooled set (SPEC 2.5) and its QA (the paper's Fig. 13 grid).

from rs5m.pub11.settings import (
    DetectorSettings,
    OutlierSettings,
    ScoringSettings,
    ThresholdSettings,
)
from rs5m.settings import section_for


rule train_rs_detector:
    input:
        positives=DETECTOR["positive_dirs"],
        negatives=DETECTOR["negative_dirs"],
    output:
        weights="results/pub11/rs_detector/weights.pt",
        metrics="results/pub11/rs_detector/metrics.json",
        work=directory("results/pub11/rs_detector/train"),
    log:
        "logs/train_rs_detector.log",
    benchmark:
        "results/benchmarks/train_rs_detector.tsv"
    conda:
        "../envs/models.yaml"
    threads: max(1, DETECTOR["workers"])  # ultralytics dataloader workers; an upper bound, clamped by --cores
    resources:
        gpu=1,
    params:
        outliers=section_for(DetectorSettings, config, "outliers"),
    script:
        "../workflow/scripts/train_rs_detector.py"


rule score_part:
    input:
        kept="results/pub11/dedup/kept.parquet",
        shards="results/pub11/download/{part}",
        detector=detector_weights,
        clip=outlier_clip_checkpoint(),
    output:
        scores="results/pub11/scores/{part}.parquet",
        embeddings="results/pub11/embeddings/{part}.npy",
    log:
        "logs/score_part/{part}.log",
    benchmark:
        "results/benchmarks/score_part/{part}.tsv"
    conda:
        "../envs/models.yaml"
    threads: max(1, OUTLIERS["workers"])  # DataLoader decode workers feeding one GPU; an upper bound
    resources:
        gpu=1,
    params:
        outliers=section_for(ScoringSettings, config, "outliers"),
    script:
        "../workflow/scripts/score_part.py"


rule outlier_threshold:
    input:
        kept="results/pub11/dedup/kept.parquet",
        scores=expand("results/pub11/scores/{part}.parquet", part=PARTS),
    output:
        final="results/pub11/outliers.parquet",
        stats="results/pub11/outliers.stats.json",
        drops="results/pub11/outliers.drops.parquet",
        thresholds="results/pub11/outliers.thresholds.json",
    log:
        "logs/outlier_threshold.log",
    conda:
        "../envs/pub11.yaml"
    resources:
        mem_mb=8000,
    params:
        outliers=section_for(ThresholdSettings, config, "outliers"),
    script:
        "../workflow/scripts/outlier_threshold.py"


rule outlier_qa:
    input:
        kept="results/pub11/dedup/kept.parquet",
        scores=expand("results/pub11/scores/{part}.parquet", part=PARTS),
    output:
        csv="results/stats/fig13_grid.csv",
        md="results/stats/fig13_grid.md",
        png="results/stats/fig13_grid.png",
        histograms="results/stats/outlier_score_histograms.png",
    log:
        "logs/outlier_qa.log",
    conda:
        "../envs/pub11.yaml"
    params:
        outliers=section_for(OutlierSettings, config, "outliers"),
    script:
        "../workflow/scripts/outlier_qa.py"
