# The embedded demo (config `demo:`): the workflow generates its inputs, tiny models, eval sets and
# benchmarks itself. Only with demo.enabled are these rules defined and rs5m.demo imported, so a
# full rebuild never loads the demo package.


if DEMO["enabled"]:
    from rs5m.demo.demo_metadata import DEMO_FILES, EXTRA_FILES as DEMO_EXTRA_FILES

    # Every file that demo_metadata writes; the demo config names some of them as sources.
    DEMO_METADATA_FILES = sorted(
        os.path.join(DEMO_METADATA, rel)
        for rel in [rel for files in DEMO_FILES.values() for rel in files]
        + DEMO_EXTRA_FILES
    )

    rule demo_metadata:
        output:
            DEMO_METADATA_FILES,
        log:
            "logs/demo_metadata.log",
        conda:
            "../envs/pub11.yaml"
        params:
            root=lambda wildcards, output: os.path.commonpath(output),
            seed=DEMO["seed"],
            rows_per_source=DEMO["rows_per_source"],
        script:
            "../workflow/scripts/demo_metadata.py"

    rule demo_detector_images:
        output:
            rs=directory(os.path.join(DEMO["root"], "rs_detector", "rs")),
            other=directory(os.path.join(DEMO["root"], "rs_detector", "non_rs")),
        log:
            "logs/demo_detector_images.log",
        conda:
            "../envs/pub11.yaml"
        params:
            per_class=24,
        script:
            "../workflow/scripts/demo_detector_images.py"

    rule rs3_demo_inputs:
        output:
            directory(RS3_DEMO_ROOT),
        log:
            "logs/rs3_demo_inputs.log",
        conda:
            "../envs/rs3.yaml"
        params:
            seed=DEMO["seed"],
        script:
            "../workflow/scripts/rs3_demo_inputs.py"

    rule evaluation_demo_benchmarks:
        output:
            directory(DEMO_EVALUATION_ROOT),
        log:
            "logs/evaluation_demo_benchmarks.log",
        conda:
            "../envs/pub11.yaml"
        params:
            seed=DEMO["seed"],
        script:
            "../workflow/scripts/evaluation_demo_benchmarks.py"


if CAPTION["tiny_models"]:

    rule rs3_tiny_models:
        output:
            blip2=directory(CAPTION["blip2"]["model"]),
            clip_a=CAPTION["clip_a"]["pretrained"],
            clip_b=CAPTION["clip_b"]["pretrained"],
        log:
            "logs/rs3_tiny_models.log",
        conda:
            "../envs/models.yaml"
        params:
            clip_a=CAPTION["clip_a"]["model"],
            clip_b=CAPTION["clip_b"]["model"],
            seed=CAPTION["seed"],
        script:
            "../workflow/scripts/rs3_tiny_models.py"


if DEMO["enabled"] and DECONTAMINATION["demo_eval_sets"]:

    rule decontamination_demo_eval:
        input:
            pub11="results/pub11/outliers.parquet",
            rs3="results/rs3/captioned.parquet",
        output:
            directory(DEMO_EVAL_ROOT),
        log:
            "logs/decontamination_demo_eval.log",
        conda:
            "../envs/pub11.yaml"
        params:
            seed=DEMO["seed"],
        script:
            "../workflow/scripts/decontamination_demo_eval.py"
