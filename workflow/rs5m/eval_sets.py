"""Evaluation-set readers (core): the decontamination stage and the evaluation benchmarks read the same sets.

An eval set is `{paths: [...], format: folder | karpathy_json | list}` (config
`decontamination.eval_sets`). Each reader returns one `EvalImage` per image file it finds, with a
stable `image_id` (the path relative to the set's folder, or the file name of a Karpathy JSON):

- `folder`: class sub-folders of images (AID, RESISC45, UC Merced, WHU-RS19, PatternNet, RSSCN7,
  EuroSAT RGB); every image below each folder, recursively; `image_id` = `<class>/<file>`.
- `karpathy_json`: `dataset_*.json` files (RSICD, RSITMD, UCM-Captions, Sydney-Captions) and the
  folders holding their images, all in `paths`; each `images[].filename` is looked up in the
  folders; its `sentences[].raw` are kept as captions for the report.
- `list`: text files with one image path a line (relative paths from the list file's folder);
  blank lines and `#` comments are ignored.

Paths are literal paths or globs. What is missing (a pattern matching nothing, an image a JSON or
list names that is not on disk) is logged and counted, never fatal, like the metadata sources.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

FORMATS = ("folder", "karpathy_json", "list")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class EvalImage:
    image_id: str
    path: str
    captions: tuple[str, ...] = ()


@dataclass
class EvalSet:
    name: str
    images: list[EvalImage] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # patterns or files named but not found


def expand_paths(patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(existing paths, patterns that matched nothing), both sorted; globs expand recursively."""
    found: set[str] = set()
    missing: list[str] = []
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            matches = glob.glob(pattern, recursive=True)
        else:
            matches = [pattern] if os.path.exists(pattern) else []
        if not matches:
            missing.append(pattern)
        found.update(matches)
    return sorted(found), sorted(missing)


def available(patterns: Iterable[str]) -> bool:
    """Whether any of an eval set's patterns names something on disk (used when the DAG is planned)."""
    return bool(expand_paths(patterns)[0])


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_folder(paths: list[str]) -> tuple[list[EvalImage], list[str]]:
    images: list[EvalImage] = []
    missing: list[str] = []
    for path in paths:
        path_ = Path(path)
        if path_.is_file():
            images.append(EvalImage(path_.name, str(path_)))
            continue
        found = _images_below(path_)
        if not found:
            missing.append(f"{path} (no image files)")
        images += [EvalImage(p.relative_to(path_).as_posix(), str(p)) for p in found]
    return images, missing


def read_karpathy_json(paths: list[str]) -> tuple[list[EvalImage], list[str]]:
    json_files = [p for p in paths if p.endswith(".json") and os.path.isfile(p)]
    folders = [Path(p) for p in paths if os.path.isdir(p)]
    if not json_files:
        raise ValueError(f"karpathy_json eval set: no dataset_*.json among {paths}")
    by_name: dict[str, Path] = {}
    for folder in folders:
        for image in _images_below(folder):
            by_name.setdefault(image.name, image)
            by_name.setdefault(image.relative_to(folder).as_posix(), image)
    images: list[EvalImage] = []
    missing: list[str] = []
    seen: set[str] = set()
    for json_file in json_files:
        payload = json.loads(Path(json_file).read_text())
        entries = payload.get("images") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise ValueError(f"{json_file}: not a Karpathy-split JSON (no `images` list)")
        for entry in entries:
            name = str(entry.get("filename") or entry.get("file_name") or "")
            if not name or name in seen:
                continue
            seen.add(name)
            captions = tuple(str(s.get("raw", "")).strip() for s in entry.get("sentences", []) if isinstance(s, dict))
            location = by_name.get(name) or by_name.get(os.path.basename(name))
            if location is None:
                missing.append(name)
                continue
            images.append(EvalImage(name, str(location), captions))
    return images, missing


def read_list(paths: list[str]) -> tuple[list[EvalImage], list[str]]:
    images: list[EvalImage] = []
    missing: list[str] = []
    for list_file in paths:
        base = Path(list_file).parent
        for line in Path(list_file).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            location = Path(line) if os.path.isabs(line) else base / line
            if location.is_file():
                images.append(EvalImage(line, str(location)))
            else:
                missing.append(line)
    return images, missing


READERS = {"folder": read_folder, "karpathy_json": read_karpathy_json, "list": read_list}


def read_eval_set(name: str, patterns: list[str], fmt: str) -> EvalSet:
    """Every image of one eval set, sorted by image id, repeats of an id kept once."""
    if fmt not in READERS:
        raise ValueError(f"eval set {name}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    paths, missing = expand_paths(patterns)
    for pattern in missing:
        logger.warning("eval set %s: %s matches nothing; skipped", name, pattern)
    images, not_found = READERS[fmt](paths) if paths else ([], [])
    for item in not_found[:20]:
        logger.warning("eval set %s: %s not found; skipped", name, item)
    if len(not_found) > 20:
        logger.warning("eval set %s: %d more images not found", name, len(not_found) - 20)
    unique: dict[str, EvalImage] = {}
    for image in images:
        unique.setdefault(image.image_id, image)
    logger.info("eval set %s (%s): %d images, %d missing", name, fmt, len(unique), len(missing) + len(not_found))
    return EvalSet(name, [unique[k] for k in sorted(unique)], missing + not_found)
