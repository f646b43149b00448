"""Assembly stage, WebDataset shards: one job per subset writes its train and val tars.

Reads `results/pub11/final.parquet` (+ the download tars and `results/pub11/metacaption.parquet`)
or `results/rs3/final.parquet` (+ the image files); writes `results/shards/{train,val}/{subset}-{split}-NNNN.tar` and the manifest
`results/shards/{subset}.manifest.json` that lists them.

Static fan-out: the number of tars follows the bytes that survive filtering, so it is known only
when the job runs. Rather than a checkpoint, each subset is one job whose declared output is the
manifest; the tars are listed in it with sample counts and sha256. The job first removes every
`{subset}-{split}-*.tar` left by an earlier or interrupted run and writes each tar under a
temporary name, renamed when complete, so a rerun after a crash gives the same bytes.

Determinism: members have safe names (`<uid>.<ext>`), fixed mtime/owner/mode, and a fixed order:
PUB11 samples go tar by tar (download tars sorted by path, each read once, front to back), sorted
by uid within each tar; RS3 samples are sorted by uid. A shard is closed when the next sample
would take it past `target_bytes`. Image bytes are copied as they are, never re-encoded.

Tar code by hand, not `tarfile`: `benchmarks/bench_shards.py` writes the same, byte-identical
shards both ways (10,000 images of 100 KiB, 2 shared cores): USTAR headers built here and the
download tars scanned here take 1.7-2.3x less wall time and 1.8-2.1x less CPU than `tarfile`
writing and reading (webdataset's TarWriter, built on tarfile, is no faster). Tests check the
shards equal tarfile's output byte for byte.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
import queue
import re
import tarfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow.parquet as pq

from rs5m.columns import UID
from rs5m.assemble.split import SPLITS, TRAIN, VAL, split_of

log = logging.getLogger(__name__)

PUB11 = "pub11"
RS3 = "rs3"
SUBSETS = (PUB11, RS3)

# Member-name styles: SPEC 5's names, or the common ones that `datasets`' webdataset loader and
# most training code decode by extension.
MEMBER_NAMES = {
    "rs5m": {"img_name": "img_name", "image": "img_content", "caption": "caption", "json": "json"},
    "standard": {"img_name": None, "image": None, "caption": "txt", "json": "json"},
}

FIXED_MTIME = 0
FIXED_MODE = 0o444
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ZEROS = bytes(BLOCK)
_IMAGE_EXTS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp", "tif": "tif", "tiff": "tif"}


@dataclass
class Sample:
    key: str
    img_name: str
    image: bytes | memoryview
    caption: str
    provenance: dict[str, Any]

    @property
    def image_ext(self) -> str:
        suffix = self.img_name.rsplit(".", 1)[-1].lower() if "." in self.img_name else "jpg"
        return _IMAGE_EXTS.get(suffix, "jpg")


@dataclass
class ShardInfo:
    path: str  # relative to the shards folder: "train/pub11-train-0000.tar"
    split: str
    samples: int
    bytes: int
    sha256: str
    first_key: str
    last_key: str


@dataclass
class Manifest:
    subset: str
    member_names: str
    target_bytes: int
    val_fraction: float
    shards: list[ShardInfo] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> split -> samples

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        payload = json.loads(Path(path).read_text())
        payload["shards"] = [ShardInfo(**item) for item in payload["shards"]]
        return cls(**payload)


_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sample_members(sample: Sample, member_names: str) -> list[tuple[str, bytes]]:
    """The (member name, bytes) pairs of one sample, in their fixed order.

    Extensions come from MEMBER_NAMES and _IMAGE_EXTS only, so checking the key makes every
    member name safe: `<key>.<ext>`, no path separator, exactly one dot.
    """
    if not _SAFE_KEY.match(sample.key):
        raise ValueError(f"unsafe sample key {sample.key!r}")
    names = MEMBER_NAMES[member_names]
    key = sample.key
    members = []
    if names["img_name"]:
        members.append((f"{key}.{names['img_name']}", sample.img_name.encode("utf-8")))
    members.append((f"{key}.{names['image'] or sample.image_ext}", sample.image))
    members.append((f"{key}.{names['caption']}", sample.caption.encode("utf-8")))
    members.append((f"{key}.{names['json']}", _JSON.encode(sample.provenance).encode("utf-8")))
    return members


def _ustar_header(name: str, size: int) -> bytes:
    """The USTAR header `tarfile` would write for a regular file with the fixed metadata.

    Built by hand because tarfile's generic path costs more than the copy of a small image;
    tests check the shards equal tarfile's output byte for byte.
    """
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"member name longer than 100 bytes: {name!r}")
    if size >= 8 ** 11:
        raise ValueError(f"member {name!r} of {size} bytes is too large for a USTAR header")
    head = encoded.ljust(100, b"\0") + _FIXED_MODE_IDS + b"%011o\0" % size + _FIXED_MTIME
    tail = _FIXED_TAIL
    checksum = sum(head) + _TAIL_SUM + 8 * 32
    return head + b"%06o\0 " % checksum + tail


_FIXED_MODE_IDS = b"%07o\0" % FIXED_MODE + b"%07o\0" % 0 + b"%07o\0" % 0
_FIXED_MTIME = b"%011o\0" % FIXED_MTIME
# typeflag, linkname, magic + version, uname, gname, devmajor + devminor (empty for regular
# files, as tarfile writes them), prefix, padding to 512
_FIXED_TAIL = (tarfile.REGTYPE + b"\0" * 100 + b"ustar\x0000" + b"\0" * 32 + b"\0" * 32
               + b"\0" * 16 + b"\0" * 155 + b"\0" * 12)
_TAIL_SUM = sum(_FIXED_TAIL)


class _HashingFileWriter:
    """Writes and sha256-hashes byte strings, in order, on a background thread.

    Both file writes and hashlib release the GIL, so the bytes are written and hashed while the
    caller builds the next samples; a bounded queue keeps at most a few MiB in flight.
    """

    _BATCH_BYTES = 1 << 20

    def __init__(self, path: Path):
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    # One join (a memcpy) gives one hash call and one write per MiB instead of
                    # two per image: each releases the GIL, and regaining it can wait for the
                    # caller's thread to reach its switch interval.
                    data = b"".join(batch)
                    self._hash.update(data)
                    self._file.write(data)
                except BaseException as error:  # reported by close(), in the caller's thread
                    self._error = error

    def write(self, *pieces: bytes) -> None:
        self._batch.extend(pieces)
        self._batch_bytes += sum(map(len, pieces))
        if self._batch_bytes >= self._BATCH_BYTES:
            self._queue.put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def close(self) -> str:
        """Flush, close and return the hex sha256 of everything written."""
        self._queue.put(self._batch)
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()


class ShardSetWriter:
    """Writes `{split}/{subset}-{split}-NNNN.tar` under `shards_dir`, rolling over at `target_bytes`.

    Headers and padding are written by hand (USTAR, the layout `tarfile` itself writes) so that
    the image bytes go from the input buffer to the file once, hashed on the way.
    """

    def __init__(self, shards_dir: Path, subset: str, split: str, target_bytes: int, member_names: str):
        if target_bytes <= 0:
            raise ValueError(f"shards.target_bytes must be positive, got {target_bytes}")
        if member_names not in MEMBER_NAMES:
            raise ValueError(f"shards.member_names must be one of {sorted(MEMBER_NAMES)}, got {member_names!r}")
        self.shards_dir = Path(shards_dir)
        self.subset, self.split = subset, split
        self.target_bytes, self.member_names = target_bytes, member_names
        self.shards: list[ShardInfo] = []
        self._file = None
        self._tmp: Path | None = None

    def shard_name(self, index: int) -> str:
        if index > 9999:
            raise ValueError("more than 10,000 shards: raise shards.target_bytes")
        return f"{self.split}/{self.subset}-{self.split}-{index:04d}.tar"

    def _open(self) -> None:
        name = self.shard_name(len(self.shards))
        path = self.shards_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(path.name + ".tmp")
        self._file = _HashingFileWriter(self._tmp)
        self._size = 0
        self._count = 0
        self._first = self._last = ""
        self._name = name

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._size += len(data)

    def add(self, sample: Sample) -> None:
        parts = []
        for name, data in sample_members(sample, self.member_names):
            parts += (_ustar_header(name, len(data)), data, _ZEROS[: -len(data) % BLOCK])
        # Pieces go to the writer thread as they are: joining them would copy every image again.
        size = sum(map(len, parts))
        if self._file is not None and self._count and self._size + size > self.target_bytes:
            self._close_shard()
        if self._file is None:
            self._open()
        self._file.write(*parts)
        self._size += size
        self._count += 1
        self._first = self._first or sample.key
        self._last = sample.key

    def _close_shard(self) -> None:
        # End-of-archive: two zero blocks, then zero-fill to a whole record, as tarfile does.
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self._size % RECORD))
        digest = self._file.close()
        os.replace(self._tmp, self.shards_dir / self._name)
        self.shards.append(ShardInfo(self._name, self.split, self._count, self._size, digest, self._first, self._last))
        self._file = None

    def close(self) -> list[ShardInfo]:
        if self._file is not None:
            self._close_shard()
        return self.shards


def remove_stale_shards(shards_dir: Path, subset: str) -> None:
    """Delete the tars (complete or half-written) an earlier run left for this subset."""
    for split in SPLITS:
        folder = Path(shards_dir) / split
        if folder.is_dir():
            for stale in sorted(folder.glob(f"{subset}-{split}-*.tar*")):
                stale.unlink()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# The JSON member has these keys, with these types, in both subsets (None where a subset has no
# such value), so readers that infer a schema from a few samples (Hugging Face `datasets`) meet
# one schema. `geo` is JSON text: its fields differ between datasets.
PROVENANCE_FIELDS = {
    "uid": "string", "subset": "string", "source": "string", "split": "string", "img_name": "string",
    "url": "string", "matched_keywords": "list<string>", "labels": "list<string>", "width": "int64",
    "height": "int64", "clip_score": "float64", "rs_score": "float64", "geo": "string", "top_cap": "string",
    "ssl_cap": "string", "meta_caption": "string",
}


# Only read (by the JSON encoder), never changed, so the empty lists can be shared.
_EMPTY_PROVENANCE = {name: ([] if kind.startswith("list") else None) for name, kind in PROVENANCE_FIELDS.items()}


def _provenance(**values: Any) -> dict:
    return {**_EMPTY_PROVENANCE, **values}


def _pub11_provenance(row: dict, split: str, img_name: str) -> dict:
    return _provenance(
        uid=row[UID], subset=PUB11, source=row["source"], split=split, img_name=img_name, url=row.get("url"),
        matched_keywords=list(row.get("matched_keywords") or []), width=row.get("width"), height=row.get("height"),
        clip_score=_clean(row.get("clip_score")), rs_score=_clean(row.get("rs_score")),
        labels=list(row.get("labels") or []), geo=row.get("geo") or None, meta_caption=row.get("meta_caption") or None,
    )


PUB11_CAPTION_MODES = ("keep", "prepend")


def attach_pub11_meta(rows: list[dict], meta: str | Path | None, caption_mode: str = "keep") -> list[dict]:
    """The PUB11 rows with `meta_caption`, `labels` and `geo` of the meta-caption table (rules
    pub11_metacaption) where it has the uid; with `prepend`, the caption becomes meta-caption +
    " " + caption, as RS3 captions are built. Rows are updated in place and returned."""
    if caption_mode not in PUB11_CAPTION_MODES:
        raise ValueError(f"metacaption.pub11_caption must be one of {PUB11_CAPTION_MODES}, got {caption_mode!r}")
    if not meta:
        return rows
    by_uid = {row[UID]: row for row in pq.read_table(meta, columns=[UID, "meta_caption", "labels", "geo"]).to_pylist()}
    for row in rows:
        extra = by_uid.get(row[UID])
        if extra is None:
            continue
        row.update(meta_caption=extra["meta_caption"], labels=extra["labels"], geo=extra["geo"])
        if caption_mode == "prepend" and extra["meta_caption"]:
            row["caption"] = " ".join(part for part in (extra["meta_caption"], (row.get("caption") or "").strip()) if part)
    return rows


def _rs3_provenance(row: dict, split: str) -> dict:
    return _provenance(
        uid=row[UID], subset=RS3, source=row["dataset"], split=split, img_name=row["img_name"],
        labels=list(row.get("labels") or []), geo=row.get("geo") or None, top_cap=row.get("top_cap"),
        ssl_cap=row.get("ssl_cap"), meta_caption=row.get("meta_caption"),
    )


def pub11_img_name(row: dict) -> str:
    ext = row["member"].rsplit(".", 1)[-1] if "." in row["member"] else "jpg"
    return f"{row['source']}_{row[UID]}.{ext}"


class _NotPlainUstar(Exception):
    """A member the fast scanner does not parse (pax/GNU long names, links): use tarfile."""


def _scan_plain_ustar(data: memoryview, wanted: set[str]) -> dict[str, memoryview]:
    """Slices of the wanted members, front to back, from a tar of plain USTAR files.

    The download tars hold short names only, so parsing their fixed headers directly avoids
    tarfile's generic machinery, which costs more per member than reading a small image.
    """
    found: dict[str, memoryview] = {}
    offset, end = 0, len(data)
    while len(found) < len(wanted) and offset + BLOCK <= end:
        header = bytes(data[offset:offset + BLOCK])
        if header == _ZEROS:
            break
        if header[156:157] not in (b"0", b"\0") or header[124] & 0x80:
            raise _NotPlainUstar()
        stored = int(header[148:156].strip(b"\0 ") or b"0", 8)
        if stored != sum(header) - sum(header[148:156]) + 8 * 32:
            raise tarfile.ReadError(f"bad header checksum at offset {offset}")
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        name = (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")
        size = int(header[124:136].strip(b"\0 ") or b"0", 8)
        start = offset + BLOCK
        if name in wanted:
            if start + size > end:
                raise tarfile.ReadError(f"{name}: truncated")
            found[name] = data[start:start + size]
        offset = start + size + (-size % BLOCK)
    return found


def _map(path: Path) -> memoryview:
    # Slices of a read-only map are not copied until the writer thread gathers them: a bytes
    # object per image read with read() costs more than the whole copy (fresh pages to fill).
    # The download tars are finished outputs of an earlier stage and are not changed meanwhile.
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def read_tar_members(tar_path: Path, wanted: set[str]) -> dict[str, bytes | memoryview]:
    """The bytes of the wanted members, reading the tar once from front to back."""
    try:
        found = _scan_plain_ustar(_map(tar_path), wanted)
    except _NotPlainUstar:
        found = {}
        with tarfile.open(tar_path, mode="r:") as archive:
            for info in archive:
                if info.name in wanted and info.isfile():
                    found[info.name] = archive.extractfile(info).read()
                    if len(found) == len(wanted):
                        break
    missing = wanted - found.keys()
    if missing:
        raise FileNotFoundError(f"{tar_path}: {len(missing)} kept members missing, e.g. {sorted(missing)[:3]}")
    return found


def pub11_samples(rows: list[dict], base_dir: Path, val_fraction: float) -> Iterator[tuple[str, Sample]]:
    """(split, sample) for every PUB11 row, grouped by download tar, uid order within a tar."""
    by_tar: dict[str, list[dict]] = {}
    for row in rows:
        by_tar.setdefault(row["tar"], []).append(row)
    for tar in sorted(by_tar):
        group = sorted(by_tar[tar], key=lambda r: r[UID])
        images = read_tar_members(base_dir / tar, {row["member"] for row in group})
        for row in group:
            split = split_of(row[UID], val_fraction)
            img_name = pub11_img_name(row)
            yield split, Sample(row[UID], img_name, images[row["member"]], row["caption"] or "",
                                _pub11_provenance(row, split, img_name))


def rs3_samples(rows: list[dict], base_dir: Path, val_fraction: float) -> Iterator[tuple[str, Sample]]:
    for row in sorted(rows, key=lambda r: r[UID]):
        split = split_of(row[UID], val_fraction)
        image = (base_dir / row["image_path"]).read_bytes()
        yield split, Sample(row[UID], row["img_name"], image, row["caption"] or "", _rs3_provenance(row, split))


def write_subset_shards(
    subset: str,
    final: str | Path,
    shards_dir: str | Path,
    manifest: str | Path,
    val_fraction: float,
    target_bytes: int,
    member_names: str = "rs5m",
    base_dir: str | Path = ".",
    pub11_meta: str | Path | None = None,
    pub11_caption: str = "keep",
) -> Manifest:
    """Write the train and val tars of one subset and its manifest; returns the manifest.

    `pub11_meta` is the PUB11 meta-caption table, applied with `pub11_caption` (attach_pub11_meta).
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    shards_dir, base_dir = Path(shards_dir), Path(base_dir)
    rows = pq.read_table(final).to_pylist()
    if subset == PUB11:
        attach_pub11_meta(rows, pub11_meta, pub11_caption)
    uids = [row[UID] for row in rows]
    if len(set(uids)) != len(uids):
        raise ValueError(f"{final}: duplicate uids; every sample must be in exactly one shard")
    remove_stale_shards(shards_dir, subset)
    writers = {split: ShardSetWriter(shards_dir, subset, split, target_bytes, member_names) for split in SPLITS}
    samples = (pub11_samples if subset == PUB11 else rs3_samples)(rows, base_dir, val_fraction)
    counts: dict[str, dict[str, int]] = {}
    for split, sample in samples:
        writers[split].add(sample)
        per_source = counts.setdefault(sample.provenance["source"], {TRAIN: 0, VAL: 0})
        per_source[split] += 1
    result = Manifest(subset, member_names, int(target_bytes), float(val_fraction),
                      [info for split in SPLITS for info in writers[split].close()], dict(sorted(counts.items())))
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(manifest) + ".tmp")
    tmp.write_text(result.to_json())
    os.replace(tmp, manifest)
    log.info("%s: %d shards, %s", subset, len(result.shards), result.counts)
    return result


def iter_shard_samples(tar_path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of a shard, in file order."""
    with tarfile.open(tar_path, mode="r:") as archive:
        key, members = None, {}
        for info in archive:
            if not info.isfile():
                continue
            name_key, _, ext = info.name.partition(".")
            if name_key != key:
                if key is not None:
                    yield key, members
                key, members = name_key, {}
            members[ext] = archive.extractfile(info).read()
        if key is not None:
            yield key, members


def manifest_paths(shards_dir: str | Path, subsets: Iterable[str] = SUBSETS) -> list[Path]:
    return [Path(shards_dir) / f"{subset}.manifest.json" for subset in subsets]
