"""Evaluation stage, one job per model x benchmark (rule `evaluate`): embeds a benchmark with one
CLIP and writes its figures to `results/eval/{model}/{benchmark}.json`.

Zero-shot: top-1 accuracy against the class names filled into `RS_PROMPT_TEMPLATES`; retrieval:
R@1/5/10 image -> text and text -> image and their mean (rs5m.evaluation.metrics).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from rs5m.evaluation.benchmarks import read_retrieval, read_zeroshot
from rs5m.evaluation.clip_models import embed_images, embed_texts
from rs5m.evaluation.metrics import RS_PROMPT_TEMPLATES, class_embeddings, retrieval_recalls, zeroshot_accuracy
from rs5m.evaluation.settings import EvaluateSettings
from rs5m.models import load_clip

logger = logging.getLogger("rs5m.evaluation.evaluate")


def evaluate(
    output: str | Path,
    benchmark: str,
    benchmark_settings: dict,
    model_name: str,
    model_settings: dict,
    settings: EvaluateSettings,
    workers: int,
) -> dict:
    """Evaluate one model on one benchmark; `benchmark_settings` = {paths, format, task, split,
    class_names}, `model_settings` = {model, pretrained, checkpoint} (the config's entries of the
    job's wildcards). Returns what it writes."""
    batch_size, device, precision = settings.batch_size, settings.device, settings.precision
    started = time.perf_counter()
    task = benchmark_settings["task"]
    clip = load_clip(model_settings["model"], model_settings["pretrained"], model_settings["checkpoint"], device)
    record = {
        "model": model_name,
        "architecture": model_settings["model"],
        "pretrained": model_settings["pretrained"],
        "checkpoint": model_settings["checkpoint"],
        "random_weights": clip.random_weights,
        "missing_keys": clip.missing_keys,
        "unexpected_keys": clip.unexpected_keys,
        "benchmark": benchmark,
        "task": task,
    }
    if task == "zeroshot":
        data = read_zeroshot(benchmark, benchmark_settings["paths"], benchmark_settings["class_names"])
        prompts = [template.format(name) for name in data.class_names for template in RS_PROMPT_TEMPLATES]
        texts = embed_texts(clip, prompts, batch_size, precision)
        classifier = class_embeddings(texts.reshape(len(data.class_names), len(RS_PROMPT_TEMPLATES), -1))
        images = embed_images(clip, data.image_paths, batch_size, workers, precision)
        record.update(
            images=len(data.image_paths),
            classes=data.class_names,
            templates=list(RS_PROMPT_TEMPLATES),
            metrics={"top1": zeroshot_accuracy(images, classifier, data.labels)},
        )
    elif task == "retrieval":
        data = read_retrieval(benchmark, benchmark_settings["paths"], benchmark_settings["split"])
        images = embed_images(clip, data.image_paths, batch_size, workers, precision)
        texts = embed_texts(clip, data.captions, batch_size, precision)
        record.update(
            split=benchmark_settings["split"],
            images=len(data.image_paths),
            captions=len(data.captions),
            metrics=retrieval_recalls(images, texts, np.asarray(data.caption_image)),
        )
    else:
        raise ValueError(f"benchmark {benchmark}: unknown task {task!r}")
    record["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("%s on %s: %s", model_name, benchmark, record["metrics"])
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(record, indent=1) + "\n")
    return record
