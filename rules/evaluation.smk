# Evaluation: judge the build by the CLIP it trains (the RS5M paper's table, SPEC 8).
# `snakemake evaluation` fine-tunes the base model on the build's shards (train_clip), evaluates
# every model on every benchmark (evaluate, one job per model x benchmark) and writes the table.
# Not part of `all`: a build is complete without it, and it needs GPU hours on a real build.

from rs5m.evaluation.settings import EvaluateSettings, TableSettings, TrainSettings
from rs5m.settings import section_for


wildcard_constraints:
    model="|".join(map(re.escape, EVALUATION_MODELS)) if EVALUATION_MODELS else "[^/]+",
    benchmark="|".join(map(re.escape, BENCHMARKS)) if BENCHMARKS else "[^/]+",


rule train_clip:
    input:
        manifests=expand(
            "results/shards/{subset}.manifest.json", subset=ASSEMBLY_SUBSETS
        ),
        base=lambda wildcards: [
            p
            for p in [EVALUATION["models"][EVALUATION_TRAIN["base"]]["pretrained"]]
            if _local_or_demo(p)
        ],
    output:
        TRAINED_MODEL,
    log:
        "logs/train_clip.log",
    benchmark:
        "results/benchmarks/train_clip.tsv"
    conda:
        "../envs/models.yaml"
    threads: EVALUATION_TRAIN["workers"]  # image decode threads feeding one GPU; an upper bound
    resources:
        gpu=EVALUATION_TRAIN["gpus"],  # > 1: one torchrun process per GPU on one node
    params:
        evaluation=section_for(TrainSettings, config, "evaluation"),
    script:
        "../workflow/scripts/train_clip.py"


rule evaluate:
    input:
        benchmark=benchmark_inputs,
        model=model_inputs,
    output:
        "results/eval/{model}/{benchmark}.json",
    log:
        "logs/evaluate/{model}/{benchmark}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{benchmark}.tsv"
    conda:
        "../envs/models.yaml"
    threads: max(1, EVALUATION["workers"])  # image decode workers; an upper bound
    resources:
        gpu=1,
    params:
        benchmark=lambda wildcards: BENCHMARKS[wildcards.benchmark],
        model=lambda wildcards: EVALUATION_MODELS[wildcards.model],
        evaluation=section_for(EvaluateSettings, config, "evaluation"),
    script:
        "../workflow/scripts/evaluate.py"


rule evaluation_table:
    input:
        evaluation_records(),
    output:
        json="results/eval/results.json",
        csv="results/eval/results.csv",
        md=report(
            "results/eval/results.md",
            caption="../workflow/report/evaluation_table.rst",
            category="Evaluation",
        ),
        png=report(
            "results/eval/results.png",
            caption="../workflow/report/evaluation_table.rst",
            category="Evaluation",
        ),
    log:
        "logs/evaluation_table.log",
    conda:
        "../envs/assembly.yaml"
    params:
        evaluation=section_for(TableSettings, config, "evaluation"),
    script:
        "../workflow/scripts/evaluation_table.py"


rule evaluation:
    input:
        evaluation_targets(),
