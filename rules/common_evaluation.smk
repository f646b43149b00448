# Evaluation configuration and helper functions (rules/evaluation.smk uses them). No rules here.

EVALUATION = config["evaluation"]
EVALUATION_TRAIN = EVALUATION["train"]
DEMO_EVALUATION_ROOT = os.path.join(DEMO["root"], "evaluation")
TRAINED_MODEL = "results/train_clip/model.pt"


def _under_demo_evaluation(path):
    root = os.path.normpath(DEMO_EVALUATION_ROOT) + os.sep
    return DEMO["enabled"] and os.path.normpath(path).startswith(root)


def _local_or_demo(path):
    """A model file the evaluation needs as an input: on disk, or built by the demo."""
    return bool(path) and (os.path.exists(path) or path.startswith(DEMO["root"]))


def _plan_benchmarks():
    """Benchmarks with something on disk (or built by the demo); the others are skipped with a message."""
    planned = {}
    for name, settings in EVALUATION["benchmarks"].items():
        if any(
            _under_demo_evaluation(p) for p in settings["paths"]
        ) or eval_set_available(settings["paths"]):
            planned[name] = settings
        else:
            print(
                f"rs5m: benchmark {name}: nothing matches {settings['paths']}; skipped",
                file=sys.stderr,
            )
    return planned


def _plan_models():
    """The configured models whose local files exist, plus the trained one (train.enabled)."""
    planned = {}
    for name, settings in EVALUATION["models"].items():
        state_dict = settings["checkpoint"]
        if state_dict and not _local_or_demo(state_dict):
            print(
                f"rs5m: evaluation model {name}: checkpoint {state_dict} not found; skipped",
                file=sys.stderr,
            )
            continue
        planned[name] = settings
    if EVALUATION_TRAIN["enabled"] and ASSEMBLY_SUBSETS:
        base = EVALUATION["models"].get(EVALUATION_TRAIN["base"])
        if base is None:
            raise ValueError(
                f"evaluation.train.base: no model {EVALUATION_TRAIN['base']!r} in evaluation.models"
            )
        planned["trained"] = {**base, "checkpoint": TRAINED_MODEL}
    return planned


BENCHMARKS = _plan_benchmarks()
EVALUATION_MODELS = _plan_models()


def benchmark_inputs(wildcards):
    """The demo's benchmark folder for a demo benchmark; real benchmarks are read where they are."""
    paths = BENCHMARKS[wildcards.benchmark]["paths"]
    return (
        [DEMO_EVALUATION_ROOT] if any(_under_demo_evaluation(p) for p in paths) else []
    )


def model_inputs(wildcards):
    """The local weight files of one evaluation model (hub tags are fetched by open_clip)."""
    settings = EVALUATION_MODELS[wildcards.model]
    return [
        p
        for p in (settings["pretrained"], settings["checkpoint"])
        if p == TRAINED_MODEL or _local_or_demo(p)
    ]


def evaluation_records():
    return [
        f"results/eval/{model}/{benchmark}.json"
        for model in EVALUATION_MODELS
        for benchmark in BENCHMARKS
    ]


def evaluation_targets():
    """Targets of `snakemake evaluation` (not part of `all`: it trains and evaluates CLIP models)."""
    if not evaluation_records():
        print("rs5m: evaluation: no benchmark or no model to evaluate", file=sys.stderr)
        return []
    return [f"results/eval/results.{ext}" for ext in ("json", "csv", "md", "png")]


def card_evaluation_table():
    """The evaluation table as an input of the dataset card, only once it exists."""
    table = "results/eval/results.md"
    return [table] if os.path.exists(table) else []
