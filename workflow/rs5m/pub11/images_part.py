"""Invalid-image removal and perceptual hashing (stage `invalid`), one job per part, one pass over the shards.

Reads `results/pub11/download/{part}/` (shards + status); writes `results/pub11/images/{part}.parquet` (uid, source, tar, member, width, height, phash).

Every downloaded row (see `rs5m.pub11.download_part`) ends here as kept or as one of:
`invalid_empty` (zero bytes), `invalid_decode` (not an image, corrupt, truncated),
`invalid_too_many_pixels` (width x height above `max_pixels`: a decompression bomb, refused before
decoding), `invalid_too_small` (shorter side below `min_side`). Rows img2dataset already could not
decode (`failed_to_resize`) are classified from its error message. CMYK, 16-bit, palette, alpha
and animated images are converted to grayscale for the hash (first frame); EXIF orientation is
applied, so width and height are as displayed.

pHash is rs5m.phash.phash_int (imagehash's `phash`, the same bits, several times faster), stored as
an int64.

With `phash_exact=False` (config `images.phash_exact`) a JPEG is decoded by libjpeg at a reduced
scale (1/2, 1/4 or 1/8, DCT scaling via PIL's `draft`) straight to grayscale, no smaller than
DRAFT_SIDE pixels a side, and hashed from that: about twice as fast, with hashes 0-4 bits from
imagehash's (benchmarks/bench_phash.py measures the distribution and the near-duplicate recall). Every byte of the file is still entropy-decoded, so truncated and corrupt
files fail as with a full decode; width and height are the full image's. Other formats are decoded
in full either way.
"""

from __future__ import annotations

import io
import logging
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from rs5m import columns as col
from rs5m.ledger import Ledger, StageStats
from rs5m.phash import phash_int
from rs5m.pub11.download_part import FAILED_TO_RESIZE, SUCCESS, read_status
from rs5m.pub11.settings import ImageSettings
from rs5m.tables import IMAGES_SCHEMA
from rs5m.tar import iter_members

log = logging.getLogger(__name__)

STAGE = "invalid"
PHASH, TAR, MEMBER = col.PHASH, col.TAR, col.MEMBER
INVALID_EMPTY = "invalid_empty"
INVALID_DECODE = "invalid_decode"
INVALID_TOO_MANY_PIXELS = "invalid_too_many_pixels"
INVALID_TOO_SMALL = "invalid_too_small"

OUTPUT_SCHEMA = IMAGES_SCHEMA  # the sample id + where the image lies, its size and pHash (rs5m.tables)

_ORIENTATION = 0x0112  # EXIF tag
# Smallest side of the reduced-scale JPEG decode (phash_exact=False): 4 x the hash's 32 pixels
# (64 lost ~2 % of the planted near-duplicates at radius 4 in benchmarks/bench_phash.py; 128 none).
DRAFT_SIDE = 128


def inspect_image(
    data: bytes, max_pixels: int, min_side: int, phash_exact: bool = True
) -> tuple[str | None, str | None, int, int, int]:
    """(reason, detail, width, height, phash) of one image's bytes; reason None means valid.

    phash_exact=False decodes JPEGs at a reduced scale for the hash (module docstring)."""
    if not data:
        return INVALID_EMPTY, "zero bytes", 0, 0, 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            return INVALID_TOO_MANY_PIXELS, f"{width}x{height}", width, height, 0
        drafted = not phash_exact and image.format == "JPEG" and image.draft("L", (DRAFT_SIDE, DRAFT_SIDE)) is not None
        image.load()
        loaded = image.size
    except Image.DecompressionBombError as error:
        return INVALID_TOO_MANY_PIXELS, str(error), 0, 0, 0
    except Exception as error:  # noqa: BLE001 - every decoder failure is the same verdict
        return INVALID_DECODE, f"{type(error).__name__}: {error}", 0, 0, 0
    try:
        if image.getexif().get(_ORIENTATION, 1) != 1:
            ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the image as stored
        pass
    if not drafted:
        width, height = image.size
    elif image.size != loaded:  # reduced scale, rotated by 90 or 270 degrees: the full size swaps too
        width, height = height, width
    if min(width, height) < min_side:
        return INVALID_TOO_SMALL, f"{width}x{height}", width, height, 0
    try:
        return None, None, width, height, phash_int(image)
    except Exception as error:  # noqa: BLE001
        return INVALID_DECODE, f"{type(error).__name__}: {error}", width, height, 0


def classify_resize_failure(message: str | None) -> str:
    """The invalid reason of a row img2dataset fetched but could not decode (`failed_to_resize`)."""
    message = message or ""
    if "CV_IO_MAX_IMAGE_PIXELS" in message or "image area too large" in message:
        return INVALID_TOO_MANY_PIXELS
    if "!buf.empty()" in message:
        return INVALID_EMPTY
    if "image too small" in message:
        return INVALID_TOO_SMALL
    return INVALID_DECODE


def _iter_images(tar_path: str, wanted: dict[str, str]) -> Iterator[tuple[str, str, bytes]]:
    """(uid, member, bytes) of the image members of one shard whose key is wanted (key -> uid)."""
    for name, _, _, read in iter_members(tar_path):
        key, _, extension = name.rpartition(".")
        if extension == "json" or extension == "txt" or key not in wanted:
            continue
        yield wanted[key], name, read()


def _inspect_batch(
    batch: list[tuple[str, str, bytes]], max_pixels: int, min_side: int, phash_exact: bool = True
) -> list[tuple]:
    return [(uid, member, *inspect_image(data, max_pixels, min_side, phash_exact)) for uid, member, data in batch]


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def inspect_images(
    items: Iterable[tuple[str, str, bytes]],
    max_pixels: int,
    min_side: int,
    processes: int = 1,
    batch_size: int = 64,
    phash_exact: bool = True,
) -> Iterator[tuple]:
    """`inspect_image` over (uid, member, bytes), in `processes` worker processes when more than one."""
    if processes <= 1:
        for batch in _batches(items, batch_size):
            yield from _inspect_batch(batch, max_pixels, min_side, phash_exact)
        return
    with ProcessPoolExecutor(processes) as pool:
        pending = []
        for batch in _batches(items, batch_size):
            pending.append(pool.submit(_inspect_batch, batch, max_pixels, min_side, phash_exact))
            if len(pending) > 4 * processes:  # bound the bytes held in flight
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


def inspect_part(
    download: str,
    out: str,
    stats: str,
    drops: str,
    settings: ImageSettings,
    threads: int,
) -> list[StageStats]:
    """Classify and hash every downloaded image of a part; write the valid ones and the ledger."""
    status = read_status(download)
    rows = status.to_pylist()
    sources = {row[col.UID]: row[col.SOURCE] for row in rows}
    ledger = Ledger(STAGE)
    kept: list[dict] = []

    def record(uid: str, reason: str | None, detail: str | None = None) -> None:
        if reason is None:
            ledger.keep(sources[uid])
        else:
            ledger.drop(uid, sources[uid], reason, detail)

    for row in rows:
        if row["status"] == FAILED_TO_RESIZE:
            record(row[col.UID], classify_resize_failure(row["error_message"]), (row["error_message"] or "").strip())

    # Successful rows by shard: key -> uid (only the latest attempt of a uid is read).
    by_tar: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["status"] == SUCCESS:
            by_tar.setdefault(row["tar"], {})[row["key"]] = row[col.UID]
    expected = {uid for keys in by_tar.values() for uid in keys.values()}

    def items() -> Iterator[tuple[str, str, bytes]]:
        for tar_path in sorted(by_tar):
            for uid, member, data in _iter_images(tar_path, by_tar[tar_path]):
                yield uid, f"{tar_path}\t{member}", data

    for uid, location, reason, detail, width, height, phash in inspect_images(
        items(), settings.max_pixels, settings.min_side, threads, phash_exact=settings.phash_exact
    ):
        expected.discard(uid)
        record(uid, reason, detail)
        if reason is None:
            tar_path, member = location.split("\t", 1)
            kept.append(
                {
                    col.UID: uid,
                    col.SOURCE: sources[uid],
                    TAR: tar_path,
                    MEMBER: member,
                    col.WIDTH: width,
                    col.HEIGHT: height,
                    PHASH: phash,
                }
            )
    for uid in sorted(expected):  # listed as a success but absent from its shard
        record(uid, INVALID_EMPTY, "image missing from its shard")

    table = pa.Table.from_pylist(sorted(kept, key=lambda r: r[col.UID]), schema=OUTPUT_SCHEMA)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    result = ledger.write(stats, drops)
    for entry in result:
        log.info("%s %s: %d in, %d kept, dropped %s", STAGE, entry.source, entry.rows_in, entry.kept, entry.dropped)
    return result
