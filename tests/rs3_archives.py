"""Two small labelled RS archives as a lab would have them, for the RS3 archive tests: a `folder`
archive (class sub-folders of JPEG/PNG tiles) and a `table` archive (a CSV of 4-band GeoTIFFs with
labels, coordinates, date, gsd, sensor and country)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TABLE_CSV = (
    "path,labels,lat,lon,date,gsd,sensor,country\n"
    "tiles/t1.tif,harbour;ships,53.54,9.98,2025-07-14,0.5,PlanetScope,Germany\n"
    "tiles/t2.tif,vineyard,,,2024-01-20,3,,\n"
    "tiles/t3.tif,,-33.87,151.2,,,,\n"
    "tiles/missing.tif,forest,,,,,,\n"
)


def write_folder_archive(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for relative, size in (("forest/f1.jpg", 40), ("forest/f2.png", 48), ("river/bend/r1.jpg", 36)):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    (root / "river" / "notes.txt").write_text("not an image\n")
    return root


def write_table_archive(root: Path) -> Path:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    rng = np.random.default_rng(1)
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    for name in ("t1", "t2", "t3"):
        data = rng.integers(0, 3000, (4, 32, 40), dtype=np.uint16)  # B, G, R, NIR
        with rasterio.open(
            root / "tiles" / f"{name}.tif",
            "w",
            driver="GTiff",
            width=40,
            height=32,
            count=4,
            dtype="uint16",
            crs=CRS.from_epsg(32632),
            transform=from_origin(565000, 5933000, 0.5, 0.5),
        ) as target:
            target.write(data)
    (root / "tiles.csv").write_text(TABLE_CSV)
    return root


def archive_entries(folder_root: Path, table_root: Path) -> list[dict]:
    """rs3.datasets entries for the two archives (every key, as the validated config has them)."""
    return [
        {
            "name": "lab_folder",
            "format": "folder",
            "root": str(folder_root),
            "table": None,
            "bands": None,
            "reflectance_clip": None,
            "jpeg_quality": 95,
        },
        {
            "name": "lab_table",
            "format": "table",
            "root": str(table_root),
            "table": "tiles.csv",
            "bands": [3, 2, 1],
            "reflectance_clip": [0, 3000],
            "jpeg_quality": 95,
        },
    ]
