# RS3 configuration and helper functions (rules/rs3.smk uses them). No rules here.

RS3 = config["rs3"]
CAPTION = config["caption"]
RS3_DEMO_ROOT = os.path.join(DEMO["root"], "rs3")
# Labelled RS archives of any kind (rs3.datasets entries with a `format`), by name.
RS3_ARCHIVES = {
    entry["name"]: entry for entry in RS3["datasets"] if isinstance(entry, dict)
}


def _rs3_name(entry):
    return entry["name"] if isinstance(entry, dict) else entry


def _rs3_roots(dataset):
    if dataset in RS3_ARCHIVES:
        return [RS3_ARCHIVES[dataset]["root"]]
    settings = RS3.get(dataset, {})
    return settings.get("roots") or [settings.get("root")]


def _rs3_available(dataset):
    """A dataset is read when one of its roots exists or the demo writes it; else skipped with a message."""
    roots = [r for r in _rs3_roots(dataset) if r]
    demo_root = os.path.normpath(RS3_DEMO_ROOT) + os.sep
    if any(
        os.path.exists(r)
        or (DEMO["enabled"] and os.path.normpath(r).startswith(demo_root))
        for r in roots
    ):
        return True
    print(
        f"rs5m: RS3 dataset {dataset}: no root found ({roots}); skipped",
        file=sys.stderr,
    )
    return False


RS3_DATASETS = [_rs3_name(d) for d in RS3["datasets"] if _rs3_available(_rs3_name(d))]
# rs3_read_archive's dataset wildcard matches the archives' names only.
RS3_ARCHIVE_PATTERN = "|".join(sorted(RS3_ARCHIVES)) or "(?!)"


def rs3_input(path):
    """A dataset root as an input: inside the demo tree it is the demo rule's output folder."""
    demo_root = os.path.normpath(RS3_DEMO_ROOT)
    if DEMO["enabled"] and os.path.normpath(path).startswith(demo_root + os.sep):
        return RS3_DEMO_ROOT
    return path


def rs3_root_subpath(dataset, default):
    """Where the dataset lies within its input folder (rs3_input): "." unless the demo writes it.

    A param, so that no param repeats an input path (snakemake --lint).
    """
    root = RS3.get(dataset, {}).get("root") or default
    return os.path.relpath(root, rs3_input(root))


def rs3_read_outputs(kind="parquet"):
    return [f"results/rs3/read/{dataset}.{kind}" for dataset in RS3_DATASETS]


def rs3_caption_outputs(kind="parquet"):
    return [f"results/rs3/caption/{part}.{kind}" for part in PARTS]


def rs3_model_files():
    """The tiny models' paths when the workflow builds them (demo), else nothing to wait for."""
    if not CAPTION["tiny_models"]:
        return []
    return [
        CAPTION["blip2"]["model"],
        CAPTION["clip_a"]["pretrained"],
        CAPTION["clip_b"]["pretrained"],
    ]


def rs3_targets():
    return ["results/rs3/final.parquet"] if RS3_DATASETS else []
