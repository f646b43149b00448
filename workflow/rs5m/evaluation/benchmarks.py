"""Evaluation benchmarks (config `evaluation.benchmarks`): what an `evaluate` job reads.

`task: zeroshot` reads class folders (the decontamination's `folder` format): one sub-folder per
class, its name turned into the class name (`BareLand` -> "bare land", `sea_lake` -> "sea lake")
unless `class_names` maps it to another. `task: retrieval` reads a Karpathy-style JSON
(`images[].filename`, `split`, `sentences[].raw`) and the folders of its images, keeping one split
(`test` by default, as the RSITMD and RSICD rows of the paper's table).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rs5m.eval_sets import expand_paths, read_folder

TASKS = ("zeroshot", "retrieval")


@dataclass(frozen=True)
class ZeroshotBenchmark:
    name: str
    class_names: list[str]  # class index -> the name the prompts use
    image_paths: list[str]
    labels: list[int]  # class index of each image


@dataclass(frozen=True)
class RetrievalBenchmark:
    name: str
    image_paths: list[str]
    captions: list[str]
    caption_image: list[int]  # index of each caption's image


def class_name(folder: str) -> str:
    """A class folder's name as prompt text: CamelCase and `_`/`-` split into lower-case words."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", folder)
    return " ".join(re.split(r"[\s_\-]+", spaced)).strip().lower()


def read_zeroshot(name: str, patterns: list[str], class_names: dict[str, str]) -> ZeroshotBenchmark:
    """Every image below each class folder of the benchmark's folder(s), classes in sorted order."""
    paths, missing = expand_paths(patterns)
    if not paths:
        raise FileNotFoundError(f"benchmark {name}: nothing matches {patterns}")
    images, _ = read_folder([p for p in paths if os.path.isdir(p)])
    by_class: dict[str, list[str]] = {}
    for image in images:
        folder = image.image_id.split("/", 1)[0] if "/" in image.image_id else None
        if folder is None:
            continue  # an image beside the class folders belongs to no class
        by_class.setdefault(folder, []).append(image.path)
    if len(by_class) < 2:
        raise ValueError(f"benchmark {name}: zero-shot classification needs two or more class folders")
    unknown = set(class_names) - set(by_class)
    if unknown:
        raise ValueError(f"benchmark {name}: class_names names folders that do not exist: {sorted(unknown)}")
    folders = sorted(by_class)
    image_paths, labels = [], []
    for index, folder in enumerate(folders):
        image_paths += by_class[folder]
        labels += [index] * len(by_class[folder])
    names = [class_names.get(folder, class_name(folder)) for folder in folders]
    return ZeroshotBenchmark(name, names, image_paths, labels)


def read_retrieval(name: str, patterns: list[str], split: str) -> RetrievalBenchmark:
    """The images of one split of a Karpathy JSON and their captions (every image keeps all of them)."""
    paths, _ = expand_paths(patterns)
    json_files = [p for p in paths if p.endswith(".json") and os.path.isfile(p)]
    if not json_files:
        raise FileNotFoundError(f"benchmark {name}: no Karpathy JSON among {patterns}")
    by_name: dict[str, str] = {}
    for folder in (Path(p) for p in paths if os.path.isdir(p)):
        for image in sorted(folder.rglob("*")):
            if image.is_file():
                by_name.setdefault(image.name, str(image))
                by_name.setdefault(image.relative_to(folder).as_posix(), str(image))
    image_paths, captions, caption_image, missing = [], [], [], []
    for json_file in json_files:
        for entry in json.loads(Path(json_file).read_text())["images"]:
            if entry.get("split") != split:
                continue
            filename = str(entry.get("filename") or entry.get("file_name"))
            location = by_name.get(filename) or by_name.get(os.path.basename(filename))
            texts = [str(s["raw"]).strip() for s in entry.get("sentences", []) if str(s.get("raw", "")).strip()]
            if location is None or not texts:
                missing.append(filename)
                continue
            caption_image += [len(image_paths)] * len(texts)
            image_paths.append(location)
            captions += texts
    if missing:
        raise FileNotFoundError(
            f"benchmark {name}: {len(missing)} {split} images missing or uncaptioned, e.g. {missing[:3]}"
        )
    if not image_paths:
        raise ValueError(f"benchmark {name}: no image of split {split!r} in {json_files}")
    return RetrievalBenchmark(name, image_paths, captions, caption_image)
