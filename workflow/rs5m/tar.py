"""Tar files, every read and write of them: member index and random access, the fast USTAR scanner,
the byte-exact shard writer's headers and its hashing writer, and streaming a shard's samples.

Random access indexes member offsets from the tar headers once, so DataLoader workers read each
image's bytes with one seek + read instead of streaming whole shards. Writing and scanning are by
hand, not `tarfile` (faster, and tests check the bytes equal tarfile's): see rs5m.assemble.shards.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import mmap
import os
import queue
import sys
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator


@dataclass(frozen=True)
class MemberLocation:
    tar: str
    offset: int
    size: int


class MissingMemberError(KeyError):
    """kept.parquet names a tar member the shard does not hold: the inputs are out of step."""


def index_tar(path: str | Path) -> dict[str, MemberLocation]:
    """Member name -> where its bytes start and how many; regular files only."""
    path = str(path)
    index = {}
    # Plain "r:" (no compression): offsets into the file are only meaningful for raw tars,
    # which is what img2dataset writes.
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            if info.isfile():
                index[info.name] = MemberLocation(path, info.offset_data, info.size)
    return index


def locate_members(pairs: Iterable[tuple[str, str]], root: str | Path = ".") -> list[MemberLocation]:
    """Locations of (tar, member) pairs, tar paths relative to `root`; each tar is indexed once."""
    pairs = list(pairs)
    root = Path(root)
    indexes: dict[str, dict[str, MemberLocation]] = {}
    locations = []
    missing = []
    for tar, member in pairs:
        if tar not in indexes:
            indexes[tar] = index_tar(root / tar)
        location = indexes[tar].get(member)
        if location is None:
            missing.append(f"{tar}:{member}")
        else:
            locations.append(location)
    if missing:
        raise MissingMemberError(f"{len(missing)} members not found in their shards, e.g. {missing[:3]}")
    return locations


class MemberReader:
    """Reads member bytes, keeping one open handle per tar.

    Handles are opened lazily so an instance can be pickled into DataLoader workers before use.
    """

    def __init__(self) -> None:
        self._handles: dict[str, object] = {}

    def read(self, location: MemberLocation) -> bytes:
        handle = self._handles.get(location.tar)
        if handle is None:
            handle = self._handles[location.tar] = open(location.tar, "rb")
        handle.seek(location.offset)
        return handle.read(location.size)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __getstate__(self) -> dict:
        return {"_handles": {}}


FIXED_MTIME = 0


FIXED_MODE = 0o444


BLOCK = tarfile.BLOCKSIZE


RECORD = tarfile.RECORDSIZE


ZERO_BLOCK = bytes(BLOCK)


def ustar_header(name: str, size: int) -> bytes:
    """The USTAR header `tarfile` would write for a regular file with the fixed metadata.

    Built by hand because tarfile's generic path costs more than the copy of a small image;
    tests check the shards equal tarfile's output byte for byte.
    """
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"member name longer than 100 bytes: {name!r}")
    if size >= 8**11:
        raise ValueError(f"member {name!r} of {size} bytes is too large for a USTAR header")
    head = encoded.ljust(100, b"\0") + _FIXED_MODE_IDS + b"%011o\0" % size + _FIXED_MTIME
    tail = _FIXED_TAIL
    checksum = sum(head) + _TAIL_SUM + 8 * 32
    return head + b"%06o\0 " % checksum + tail


_FIXED_MODE_IDS = b"%07o\0" % FIXED_MODE + b"%07o\0" % 0 + b"%07o\0" % 0


_FIXED_MTIME = b"%011o\0" % FIXED_MTIME


# typeflag, linkname, magic + version, uname, gname, devmajor + devminor (empty for regular
# files, as tarfile writes them), prefix, padding to 512
_FIXED_TAIL = (
    tarfile.REGTYPE + b"\0" * 100 + b"ustar\x0000" + b"\0" * 32 + b"\0" * 32 + b"\0" * 16 + b"\0" * 155 + b"\0" * 12
)


_TAIL_SUM = sum(_FIXED_TAIL)


def _writev_all(fd: int, pieces: list) -> None:
    """Write every piece, in order, with as few `writev` calls as the kernel allows (no join)."""
    start = 0
    while start < len(pieces):
        chunk = pieces[start : start + _IOV_MAX]
        written = os.writev(fd, chunk)
        for piece in chunk:
            if written < len(piece):
                break
            written -= len(piece)
            start += 1
        else:
            continue
        # A short write (rare on regular files): the rest of this piece, then go on.
        pieces[start] = memoryview(pieces[start])[written:]


_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)


def _sync_file_range():
    """Linux's sync_file_range(2), or None where the C library has none (then write-back is the
    kernel's own, later)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # start write-back of the range's dirty pages; do not wait for it


@contextlib.contextmanager
def prompt_thread_handoff(seconds: float = 0.001) -> Iterator[None]:
    """Hand the GIL between threads every `seconds` (CPython's default is 5 ms) while the block runs.

    HashingFileWriter's write and hash threads need the GIL back after each piece they pass to C;
    with the default interval they wait for the sample-building thread for up to 5 ms each time.
    A 1 ms interval cut the shard writer's loop by about a quarter (benchmarks/bench_shards.py).
    The previous interval is restored on exit.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class HashingFileWriter:
    """Writes byte strings to a file and sha256-hashes them, in order, on two background threads.

    The caller hands over pieces (bytes, or memoryviews of the mapped download tars). One thread
    writes them with `os.writev`, so the kernel copies straight from the pieces and nothing is joined
    in Python (a join holds the GIL for the whole memcpy); the other hashes them. Both release the
    GIL, so writing, hashing and the caller's sample building run at once; bounded queues keep at
    most a few MiB in flight. Every _WRITE_BACK_BYTES written, the writer asks the kernel to start
    writing them to disk (sync_file_range, asynchronous): a shard's bytes then go to disk while
    the next ones are built instead of piling up as dirty pages for a later flush, so writing a
    large subset is bound by the disk, not by write-back bursts (benchmarks/bench_shards.py).
    """

    _BATCH_BYTES = 1 << 20
    _IN_FLIGHT = 8
    _WRITE_BACK_BYTES = 8 << 20

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._hash = hashlib.sha256()
        self._queues = (queue.Queue(maxsize=self._IN_FLIGHT), queue.Queue(maxsize=self._IN_FLIGHT))
        self._batch: list = []
        self._batch_bytes = 0
        self._written = self._unsynced = 0
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(work, queue_), daemon=True)
            for work, queue_ in zip((self._write_batch, self._hash_batch), self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def _write_batch(self, batch: list) -> None:
        _writev_all(self._fd, batch)
        self._unsynced += sum(map(len, batch))
        if self._unsynced >= self._WRITE_BACK_BYTES and _SYNC_FILE_RANGE is not None:
            # A failure here only means the kernel writes these pages back later itself.
            _SYNC_FILE_RANGE(self._fd, self._written, self._unsynced, _SYNC_FILE_RANGE_WRITE)
            self._written += self._unsynced
            self._unsynced = 0

    def _hash_batch(self, batch: list) -> None:
        update = self._hash.update
        for piece in batch:
            update(piece)

    def _drain(self, work, source: queue.Queue) -> None:
        while (batch := source.get()) is not None:
            if not self._errors:
                try:
                    work(batch)
                except BaseException as error:  # noqa: BLE001 - reported by close(), in the caller's thread
                    self._errors.append(error)

    def _put(self, batch: list) -> None:
        self._queues[0].put(batch)
        self._queues[1].put(list(batch) if batch is not None else None)  # the writer may slice its copy

    def write(self, *pieces: bytes | memoryview) -> None:
        self._batch.extend(pieces)
        self._batch_bytes += sum(map(len, pieces))
        if self._batch_bytes >= self._BATCH_BYTES:
            self._put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def close(self) -> str:
        """Flush, close and return the hex sha256 of everything written."""
        self._put(self._batch)
        self._put(None)
        for thread in self._threads:
            thread.join()
        os.close(self._fd)
        if self._errors:
            raise self._errors[0]
        return self._hash.hexdigest()


def tar_size(content_bytes: int) -> int:
    """Size of a tar whose members (headers, data, padding) take `content_bytes`: with the two
    end-of-archive blocks and the zero-fill to a whole record that tarfile writes."""
    end = content_bytes + 2 * BLOCK
    return end + (-end % RECORD)


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
        header = bytes(data[offset : offset + BLOCK])
        if header == ZERO_BLOCK:
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
            found[name] = data[start : start + size]
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


def iter_shard_samples(source: str | Path | BinaryIO) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of a shard, in file order, reading it once from
    front to back with one sample in memory; `source` is a path or a readable file object."""
    key, members = None, {}
    for name, _, _, read in iter_members(source):
        name_key, _, ext = name.partition(".")
        if name_key != key:
            if key is not None:
                yield key, members
            key, members = name_key, {}
        members[ext] = read()
    if key is not None:
        yield key, members


def iter_members(source: str | Path | BinaryIO) -> Iterator[tuple[str, int, int, Callable[[], bytes]]]:
    """(name, data offset, size, read) of every regular file member, in file order, streaming the tar
    once; `read()` returns the member's bytes and is only valid until the next member."""
    opened = tarfile.open(fileobj=source, mode="r|") if hasattr(source, "read") else tarfile.open(source, mode="r|")
    with opened as archive:
        for info in archive:
            if info.isfile():
                yield info.name, info.offset_data, info.size, lambda info=info: archive.extractfile(info).read()
