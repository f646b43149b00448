"""RS3 reader for fMoW-rgb (SPEC 3): the `_rgb` and `_msrgb` JPEGs with their JSON metadata.

Walks a fMoW root in its published layout; writes one table (rs5m.rs3.readers.READ_SCHEMA) plus the
ledger files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rs5m.columns import make_uid
from rs5m.ledger import StageStats
from rs5m.rs3.readers import Outcome, finish, image_size, kept_row, keys_status, load_json, map_threads
from rs5m.rs3.settings import FmowSettings

# Keys of a train *_rgb.json that the meta-caption uses; a record without them is kept with
# meta_status "missing_keys" and its caption loses those clauses.
FMOW_EXPECTED_KEYS = (
    "bounding_boxes",
    "timestamp",
    "country_code",
    "gsd",
    "utm",
    "cloud_cover",
    "scan_direction",
    "target_azimuth_dbl",
    "off_nadir_angle_dbl",
)


_FMOW_IMAGE = re.compile(r"^(?P<stem>.+_(?P<variant>rgb|msrgb))\.(?:jpg|jpeg)$", re.IGNORECASE)


def read_fmow(
    root: str | Path,
    out_path: str | Path,
    settings: FmowSettings,
    threads: int,
    dataset: str = "fmow",  # not config: the dataset name the rows and uids carry
) -> StageStats:
    """fMoW-rgb `<split>/<category>/<category>_<id>/<category>_<id>_<n>_{rgb,msrgb}.{jpg,json}`.

    Every image is a sample and takes its metadata from the JSON of the same stem. A JSON with no
    image is a dropped sample (`missing_image`); an image with no or a broken JSON is kept with
    the category of its folder and a meta_status saying what was missing.
    """
    split, variants = settings.split, settings.variants
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"fMoW split folder not found: {split_dir}")
    variants = {v.lower() for v in variants}
    stems: dict[Path, dict[str, Path]] = {}
    for path in sorted(split_dir.glob("*/*/*")):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix == ".json":
            stem = path.with_suffix("")
            if stem.name.rsplit("_", 1)[-1].lower() in variants:
                stems.setdefault(stem, {})["json"] = path
        else:
            match = _FMOW_IMAGE.match(path.name)
            if match and match.group("variant").lower() in variants:
                stems.setdefault(path.with_name(match.group("stem")), {})["image"] = path

    def one(item: tuple[Path, dict[str, Path]]) -> Outcome:
        stem, files = item
        image = files.get("image") or stem.with_name(stem.name + ".jpg")
        relative = image.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        if "image" not in files:
            return Outcome(uid, reason="missing_image", detail=relative)
        try:
            width, height = image_size(image)
        except Exception as error:  # noqa: BLE001 - any decoder error is this sample's drop reason
            return Outcome(uid, reason="unreadable_image", detail=f"{relative}: {error}")
        record, status = load_json(files.get("json") or stem.with_suffix(".json"))
        status = keys_status(record, status, FMOW_EXPECTED_KEYS)
        category_folder = image.parent.parent.name
        boxes = record.get("bounding_boxes") if isinstance(record.get("bounding_boxes"), list) else []
        box_categories = [b.get("category") for b in boxes if isinstance(b, dict) and b.get("category")]
        category = (
            box_categories[1]
            if len(box_categories) > 1
            else (box_categories[0] if box_categories else record.get("category") or category_folder)
        )
        return kept_row(
            uid, dataset, f"{dataset}_{image.stem}.jpg", image, relative,
            split=split, labels=[str(category)], meta=json.dumps(record, ensure_ascii=False),
            meta_status=status, width=width, height=height,
        )  # fmt: skip

    return finish(dataset, map_threads(one, sorted(stems.items()), threads), out_path)
