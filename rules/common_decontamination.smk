# Decontamination configuration and helper functions (rules/decontamination.smk uses them). No rules here.

import re

from rs5m.eval_sets import available as eval_set_available

DECONTAMINATION = config["decontamination"]
DEMO_EVAL_ROOT = os.path.join(DEMO["root"], "eval")


def _under_demo_eval(path):
    root = os.path.normpath(DEMO_EVAL_ROOT) + os.sep
    return DEMO["enabled"] and os.path.normpath(path).startswith(root)


def _eval_set_settings():
    """decontamination.eval_sets plus every evaluation benchmark (one list, two uses), unless the
    benchmark says decontaminate: false or an eval set of its name exists."""
    eval_sets = dict(DECONTAMINATION["eval_sets"])
    for name, benchmark in config["evaluation"]["benchmarks"].items():
        if benchmark["decontaminate"] and name not in eval_sets:
            eval_sets[name] = {
                "paths": benchmark["paths"],
                "format": benchmark["format"],
            }
    return eval_sets


def _plan_eval_sets():
    """Eval sets with something on disk (or built by the demo); the others are skipped with a message."""
    planned = {}
    for name, settings in _eval_set_settings().items():
        if any(_under_demo_eval(p) for p in settings["paths"]) or eval_set_available(
            settings["paths"]
        ):
            planned[name] = settings
        else:
            print(
                f"rs5m: eval set {name}: nothing matches {settings['paths']}; skipped",
                file=sys.stderr,
            )
    return planned


EVAL_SETS = _plan_eval_sets()


wildcard_constraints:
    eval_set="|".join(map(re.escape, EVAL_SETS)) if EVAL_SETS else "[^/]+",


def eval_set_inputs(wildcards):
    """The paths of one eval set that exist now (files and folders), or the demo's eval folder."""
    paths = EVAL_SETS[wildcards.eval_set]["paths"]
    if any(_under_demo_eval(p) for p in paths):
        return [DEMO_EVAL_ROOT]
    return (
        []
    )  # real eval sets are read where they are; the job reports what it cannot find


def eval_tables():
    return [f"results/decontamination/eval/{name}.parquet" for name in EVAL_SETS]


def rs3_decontamination_features(kind):
    """Per-part pHash and embeddings of the captioned RS3 images, only when there is something to match."""
    if not EVAL_SETS:
        return []
    return [f"results/decontamination/rs3/{part}.{kind}" for part in PARTS]


def decontamination_matches():
    subsets = (["pub11"] if SOURCES else []) + (["rs3"] if RS3_DATASETS else [])
    return [f"results/decontamination/{subset}.matches.parquet" for subset in subsets]


def decontamination_targets():
    if not (SOURCES or RS3_DATASETS):
        return []
    return [
        "results/stats/decontamination.csv",
        "results/stats/decontamination.md",
        "results/stats/decontamination_pairs.png",
    ]
