"""Demo detector images: training folders for the demo's RS detector, aerial scenes vs ground photos.

Writes `resources/demo/detector/{rs,other}/NNNN.jpg`, rendered by the demo web's own generators.
"""

from __future__ import annotations

from pathlib import Path


def write_detector_images(rs_dir: str | Path, other_dir: str | Path, per_class: int) -> None:
    """Training folders for the demo's RS detector: aerial scenes vs ground photos.

    Rendered by the demo server's own generators, from numbers the metadata never uses, so the
    detector does not see the images it later scores.
    """
    from rs5m.demo.web import render_aerial, render_photo

    for folder, render in ((Path(rs_dir), render_aerial), (Path(other_dir), render_photo)):
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            render(50_000 + n).convert("RGB").save(folder / f"{n:04d}.jpg", quality=90)
