"""Random access to members of the download stage's webdataset tars (uncompressed).

Indexes member offsets from the tar headers once, so DataLoader workers read each image's bytes
with one seek + read instead of streaming whole shards.
"""
from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


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
