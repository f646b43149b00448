"""Demo benchmarks of the evaluation stage: small offline sets made from held-out demo scenes.

Renders aerial scenes the demo web never serves (render indices from HELD_OUT_OFFSET, beyond the
demo's images and the decontamination demo's distinct images), tinted per class, into
`<root>/scenes/<Class>/*.jpg` (a zero-shot `folder` benchmark) and `<root>/captions/` (a
`karpathy_json` retrieval benchmark: `dataset_demo.json` with test and train images, two or three
captions each, and `images/`). Demo only: production code never imports this module.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from PIL import Image

from rs5m.demo.web import render_aerial

logger = logging.getLogger("rs5m.demo.evaluation_demo_benchmarks")

HELD_OUT_OFFSET = 200_000
SIZE = 96
# Folder name -> (RGB tint, caption words): names in the benchmarks' CamelCase style.
CLASSES = {
    "Farmland": ((120, 150, 70), "farmland with crop fields"),
    "BareLand": ((200, 180, 130), "bare land with sand and dry soil"),
    "DenseForest": ((30, 90, 40), "a dense green forest"),
    "SeaLake": ((40, 80, 170), "a blue lake with a shore"),
}
PER_CLASS = 5
RETRIEVAL_TEST, RETRIEVAL_TRAIN = 10, 3


def _scene(index: int, tint: tuple[int, int, int]) -> Image.Image:
    image = render_aerial(HELD_OUT_OFFSET + index).resize((SIZE, SIZE), Image.LANCZOS)
    return Image.blend(image, Image.new("RGB", image.size, tint), 0.55)


def evaluation_demo_benchmarks(output_dir: str | Path, seed: int) -> dict:
    """Write the two demo benchmarks under `output_dir`; returns their sizes."""
    rng = random.Random(seed)
    root = Path(output_dir)
    index = 0
    for folder, (tint, _) in CLASSES.items():
        (root / "scenes" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            _scene(index, tint).save(root / "scenes" / folder / f"{folder.lower()}_{i:02d}.jpg", quality=90)
            index += 1
    (root / "captions" / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    classes = list(CLASSES.items())
    for i in range(RETRIEVAL_TEST + RETRIEVAL_TRAIN):
        folder, (tint, words) = classes[i % len(classes)]
        filename = f"scene_{i:03d}.jpg"
        _scene(index, tint).save(root / "captions" / "images" / filename, quality=90)
        index += 1
        count = rng.randint(2, 3)
        sentences = [
            {"raw": template.format(words, i)}
            for template in (
                "an aerial image of {} (scene {})",
                "a satellite view of {}, tile {}",
                "{} seen from above, {}",
            )[:count]
        ]
        split = "test" if i < RETRIEVAL_TEST else "train"
        entries.append({"filename": filename, "imgid": i, "split": split, "sentences": sentences})
    (root / "captions" / "dataset_demo.json").write_text(json.dumps({"images": entries, "dataset": "demo"}, indent=1))
    sizes = {"scenes": PER_CLASS * len(CLASSES), "captions_test": RETRIEVAL_TEST, "captions_train": RETRIEVAL_TRAIN}
    logger.info("demo evaluation benchmarks in %s: %s", root, sizes)
    return sizes
