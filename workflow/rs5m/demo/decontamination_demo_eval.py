"""Demo eval set for the decontamination stage: planted copies of the demo's own kept images.

Builds, from images the demo keeps (PUB11 download tars and RS3 image files), transformed copies
as a benchmark would hold them: resizes (0.5x to 2x), JPEG re-encoding (quality 50 to 95),
rotations by 90/180/270 degrees, flips, crops of at most 5 %, small brightness changes and
combinations; plus distinct images (aerial scenes the demo never serves). Written as three eval
sets, one per reader format: a `folder` set (class sub-folders), a `karpathy_json` set (JSON with
captions + image folder) and a `list` set. Demo only: production code never imports this module.
"""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
from PIL import Image, ImageEnhance

from rs5m.demo.web import render_aerial

logger = logging.getLogger("rs5m.demo.decontamination_demo_eval")

# Render indices far beyond the demo web's images: pictures no demo sample shows.
DISTINCT_OFFSET = 100_000


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resize(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.LANCZOS)


def _crop(image: Image.Image, fraction: float, rng: random.Random) -> Image.Image:
    """Remove `fraction` of each side length, split at random between the two edges."""
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    left, top = rng.randint(0, dx), rng.randint(0, dy)
    return image.crop((left, top, image.width - (dx - left), image.height - (dy - top)))


def _brightness(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def planted_transforms(rng: random.Random) -> list[tuple[str, Callable[[Image.Image], Image.Image]]]:
    """(name, transform) of every planted copy kind; parameters drawn from `rng` within the ranges."""
    scale_down, scale_up = rng.uniform(0.5, 0.8), rng.uniform(1.25, 2.0)
    q_low, q_high = rng.randint(50, 65), rng.randint(80, 95)
    crop = rng.uniform(0.02, 0.05)
    light, dark = rng.uniform(1.03, 1.1), rng.uniform(0.9, 0.97)
    seed = rng.randrange(1 << 30)
    return [
        (f"resize{scale_down:.2f}", lambda im: _resize(im, scale_down)),
        (f"resize{scale_up:.2f}", lambda im: _resize(im, scale_up)),
        ("resize0.50", lambda im: _resize(im, 0.5)),
        ("resize2.00", lambda im: _resize(im, 2.0)),
        (f"jpeg{q_low}", lambda im: _jpeg(im, q_low)),
        (f"jpeg{q_high}", lambda im: _jpeg(im, q_high)),
        ("rot90", lambda im: im.transpose(Image.Transpose.ROTATE_90)),
        ("rot180", lambda im: im.transpose(Image.Transpose.ROTATE_180)),
        ("rot270", lambda im: im.transpose(Image.Transpose.ROTATE_270)),
        ("flip_lr", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        ("flip_tb", lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
        (f"crop{crop:.3f}", lambda im: _crop(im, crop, random.Random(seed))),
        ("crop0.050", lambda im: _crop(im, 0.05, random.Random(seed + 1))),
        (f"bright{light:.2f}", lambda im: _brightness(im, light)),
        (f"bright{dark:.2f}", lambda im: _brightness(im, dark)),
        ("rot90+resize0.6+jpeg60", lambda im: _jpeg(_resize(im.transpose(Image.Transpose.ROTATE_90), 0.6), 60)),
        (
            "flip_lr+crop0.04+jpeg75",
            lambda im: _jpeg(_crop(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.04, random.Random(seed + 2)), 75),
        ),
        (
            "rot270+bright1.08+resize1.5",
            lambda im: _resize(_brightness(im.transpose(Image.Transpose.ROTATE_270), 1.08), 1.5),
        ),
    ]


def planted_copies(image: Image.Image, rng: random.Random, count: int | None = None) -> list[tuple[str, Image.Image]]:
    """Transformed copies of one image: every kind, or `count` kinds drawn at random."""
    transforms = planted_transforms(rng)
    if count is not None:
        transforms = rng.sample(transforms, min(count, len(transforms)))
    return [(name, transform(image.convert("RGB"))) for name, transform in transforms]


def distinct_images(count: int, offset: int = DISTINCT_OFFSET) -> list[Image.Image]:
    return [render_aerial(offset + n) for n in range(count)]


def _pub11_images(table_path: Path, count: int) -> list[tuple[str, Image.Image]]:
    from rs5m.tar import MemberReader, locate_members

    table = pq.read_table(table_path, columns=["uid", "tar", "member"]).sort_by("uid")
    rows = table.to_pylist()[:count]
    reader = MemberReader()
    locations = locate_members([(r["tar"], r["member"]) for r in rows], root=".")
    out = [(r["uid"], Image.open(io.BytesIO(reader.read(loc))).convert("RGB")) for r, loc in zip(rows, locations)]
    reader.close()
    return out


def _rs3_images(table_path: Path, count: int) -> list[tuple[str, Image.Image]]:
    rows = pq.read_table(table_path, columns=["uid", "image_path"]).sort_by("uid").to_pylist()[:count]
    return [(r["uid"], Image.open(r["image_path"]).convert("RGB")) for r in rows]


def write_demo_eval_sets(
    pub11: str | Path,
    rs3: str | Path,
    root: str | Path,
    seed: int,
    # Not config: the sizes of the demo's three small eval sets.
    pub11_images: int = 6,
    rs3_images: int = 2,
    copies: int = 3,
    distinct: int = 12,
) -> dict:
    """Three eval sets under `root` (scenes/, captions/, listed/) with planted copies of the first
    `pub11_images` PUB11 and `rs3_images` RS3 kept images (by uid) and `distinct` unrelated images.
    Returns {uid: [eval image ids]} of the planted copies (also written to root/planted.json)."""
    root = Path(root)
    rng = random.Random(seed)
    sources = _pub11_images(Path(pub11), pub11_images) + _rs3_images(Path(rs3), rs3_images)
    others = distinct_images(distinct)
    planted: dict[str, list[str]] = {}
    karpathy = {"dataset": "demo_captions", "images": []}
    list_lines = []
    for k, (uid, image) in enumerate(sources):
        for j, (name, copy) in enumerate(planted_copies(image, rng, copies)):
            which = (k + j) % 3
            if which == 0:
                rel = f"class_{k % 2}/{uid}_{name}.png"
                path, image_id = root / "scenes" / rel, rel
            elif which == 1:
                rel = f"{uid}_{name}.jpg"
                path, image_id = root / "captions" / "images" / rel, rel
                karpathy["images"].append(
                    {
                        "filename": rel,
                        "imgid": len(karpathy["images"]),
                        "split": "test",
                        "sentences": [{"raw": f"a planted copy ({name})"}],
                    }
                )
            else:
                rel = f"images/{uid}_{name}.png"
                path, image_id = root / "listed" / rel, rel
                list_lines.append(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            copy.save(path, quality=90) if path.suffix == ".jpg" else copy.save(path)
            planted.setdefault(uid, []).append(image_id)
    for n, image in enumerate(others):
        rel = f"class_distinct/distinct_{n:03d}.png"
        (root / "scenes" / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / "scenes" / rel)
    (root / "captions" / "dataset_demo.json").write_text(json.dumps(karpathy, indent=1, sort_keys=True) + "\n")
    (root / "listed" / "images.txt").write_text("# planted copies, one path a line\n" + "\n".join(list_lines) + "\n")
    (root / "planted.json").write_text(json.dumps(planted, indent=1, sort_keys=True) + "\n")
    logger.info(
        "demo eval sets under %s: %d planted copies of %d images, %d distinct images",
        root,
        sum(map(len, planted.values())),
        len(planted),
        len(others),
    )
    return planted
