"""RS3 reader for MillionAID (SPEC 3): a flat folder of scene images, no labels.

Walks a MillionAID root; writes one table (rs5m.rs3.readers.READ_SCHEMA) plus the ledger files.
"""

from __future__ import annotations

from pathlib import Path

from rs5m.columns import make_uid
from rs5m.ledger import StageStats
from rs5m.rs3.readers import IMAGE_SUFFIXES, Outcome, finish, image_size, kept_row, map_threads
from rs5m.rs3.settings import MillionAidSettings


def read_millionaid(
    root: str | Path,
    out_path: str | Path,
    settings: MillionAidSettings,
    threads: int,
    dataset: str = "millionaid",  # not config: the dataset name the rows and uids carry
) -> StageStats:
    """MillionAID `<split>/` as one flat folder of images (the released test split), or the
    labelled hierarchy `<split>/<L1>/<L2>[/<L3>]/P*.jpg`, whose folder names become labels."""
    split = settings.split
    root = Path(root)
    split_dir = root / split if (root / split).is_dir() else root
    files = sorted(p for p in split_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    seen: set[str] = set()

    def one(path: Path) -> Outcome:
        relative = path.relative_to(root).as_posix()
        uid = make_uid(dataset, relative)
        try:
            width, height = image_size(path)
        except Exception as error:  # noqa: BLE001 - any decoder error is this sample's drop reason
            return Outcome(uid, reason="unreadable_image", detail=f"{relative}: {error}")
        labels = list(path.relative_to(split_dir).parts[:-1])
        return kept_row(
            uid, dataset, f"{dataset}_{path.stem}.jpg", path, relative,
            split=split, labels=labels, meta="{}", meta_status="ok", width=width, height=height,
        )  # fmt: skip

    outcomes = []
    for outcome in map_threads(one, files, threads):
        # Two files with one stem would collide in the shards' img_name: the first (sorted) wins.
        if outcome.row is not None:
            if outcome.row["img_name"] in seen:
                outcome = Outcome(outcome.uid, reason="duplicate_name", detail=outcome.row["source_path"])
            else:
                seen.add(outcome.row["img_name"])
        outcomes.append(outcome)
    return finish(dataset, outcomes, out_path)
