"""Browse: the random-access index over a finished run folder.

Reads `results/shards/**/*.tar`, `results/pub11/download/*/*.tar` and `results/**/*.drops.parquet`
once; writes `results/browse/index.sqlite` (member offsets, captions, provenance, drop records).

Size: building the index and querying it share one SQLite schema, stated once here.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tarfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from rs5m.columns import make_uid
from rs5m.tar import iter_members

# Bump when the tables below change: an index of another version is rebuilt from scratch.
INDEX_VERSION = 2
INDEX_PATH = Path("results") / "browse" / "index.sqlite"

SHARD_GLOB = "results/shards/*/*.tar"
DOWNLOAD_GLOB = "results/pub11/download/*/*.tar"
DROPS_GLOB = "results/**/*.drops.parquet"

IMAGE_SUFFIXES = ("img_content", "jpg", "jpeg", "png", "webp", "tif", "tiff")
CAPTION_SUFFIXES = ("caption", "txt")

SCHEMA = """
CREATE TABLE files (path TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, entries INTEGER NOT NULL);
CREATE TABLE samples (uid TEXT PRIMARY KEY, key TEXT NOT NULL, tar TEXT NOT NULL, split TEXT,
                      subset TEXT, source TEXT, img_name TEXT, caption TEXT, clip_score REAL,
                      rs_score REAL, provenance TEXT, img_offset INTEGER, img_size INTEGER,
                      img_member TEXT);
CREATE INDEX samples_filter ON samples (split, subset, source);
CREATE INDEX samples_tar ON samples (tar);
CREATE TABLE sample_keywords (uid TEXT NOT NULL, keyword TEXT NOT NULL);
CREATE INDEX sample_keywords_keyword ON sample_keywords (keyword, uid);
CREATE INDEX sample_keywords_uid ON sample_keywords (uid);
CREATE TABLE downloads (uid TEXT PRIMARY KEY, tar TEXT NOT NULL, key TEXT NOT NULL,
                        img_offset INTEGER NOT NULL, img_size INTEGER NOT NULL, img_member TEXT);
CREATE INDEX downloads_tar ON downloads (tar);
CREATE TABLE drops (uid TEXT, source TEXT, stage TEXT, reason TEXT, detail TEXT, file TEXT NOT NULL);
CREATE INDEX drops_stage ON drops (stage, reason, source);
CREATE INDEX drops_file ON drops (file);
CREATE INDEX drops_uid ON drops (uid);
"""


@dataclass(frozen=True)
class ImageRef:
    """Where one image's bytes sit: a tar inside the run folder, a byte offset and a length."""

    tar: str
    offset: int
    size: int
    member: str


@dataclass(frozen=True)
class RefreshReport:
    indexed: list[str]
    removed: list[str]
    unchanged: int
    # (file, error) of each file that could not be read (a corrupt tar): left out, retried next start.
    failed: list[tuple[str, str]] = field(default_factory=list)


class StaleFileError(OSError):
    """A tar changed (size or mtime) since it was indexed: its offsets no longer hold."""


def split_member(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the base name."""
    directory, _, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), suffix.lower()


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _read_tar_groups(path: Path, small_suffixes: set[str]) -> dict[str, dict]:
    """Per key: the small members' bytes and the image member's offset and size (never its bytes)."""
    groups: dict[str, dict] = {}
    for name, offset, size, read in iter_members(path):
        key, suffix = split_member(name)
        group = groups.setdefault(key, {})
        if suffix in IMAGE_SUFFIXES and "image" not in group:
            group["image"] = (offset, size, name)
        elif suffix in small_suffixes:
            group[suffix] = read()
    return groups


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _shard_rows(run_dir: Path, rel: str) -> tuple[list[tuple], list[tuple]]:
    path = run_dir / rel
    # results/shards/{split}/{subset}-{split}-NNNN.tar
    split = path.parent.name
    subset = path.name.split("-", 1)[0]
    samples, keywords = [], []
    for key, group in _read_tar_groups(path, {"json", "caption", "txt", "img_name"}).items():
        if "image" not in group and "json" not in group:
            continue
        try:
            provenance = json.loads(_decode(group.get("json", b"{}")))
        except ValueError:
            provenance = {"error": "unreadable json member"}
        if not isinstance(provenance, dict):
            provenance = {"value": provenance}
        caption = next((_decode(group[s]) for s in CAPTION_SUFFIXES if s in group), None)
        if caption is None:
            caption = str(provenance.get("caption", ""))
        img_offset, img_size, img_member = group.get("image", (None, None, None))
        img_name = _decode(group["img_name"]) if "img_name" in group else provenance.get("img_name")
        if not img_name:
            img_name = f"{Path(key).name}.{img_member.rsplit('.', 1)[-1] if img_member else 'jpg'}"
            if img_member and img_member.endswith(".img_content"):
                img_name = f"{Path(key).name}.jpg"
        uid = str(provenance.get("uid") or make_uid("shard", f"{rel}/{key}"))
        source = provenance.get("dataset") or provenance.get("source") or subset
        samples.append(
            (
                uid,
                key,
                rel,
                split,
                subset,
                str(source),
                str(img_name),
                caption,
                _float_or_none(provenance.get("clip_score")),
                _float_or_none(provenance.get("rs_score")),
                json.dumps(provenance, sort_keys=True),
                img_offset,
                img_size,
                img_member,
            )
        )
        matched = provenance.get("matched_keywords") or []
        if isinstance(matched, str):
            matched = [matched]
        keywords.extend((uid, str(word).lower()) for word in dict.fromkeys(matched))
    return samples, keywords


def _download_rows(run_dir: Path, rel: str) -> list[tuple]:
    rows = []
    for key, group in _read_tar_groups(run_dir / rel, {"json"}).items():
        if "image" not in group or "json" not in group:
            continue
        try:
            uid = json.loads(_decode(group["json"])).get("uid")
        except (ValueError, AttributeError):
            continue
        if uid:
            offset, size, member = group["image"]
            rows.append((str(uid), rel, key, offset, size, member))
    return rows


def _drop_rows(run_dir: Path, rel: str) -> list[tuple]:
    table = pq.read_table(run_dir / rel)
    columns = {
        name: table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
        for name in ("uid", "source", "stage", "reason", "detail")
    }
    return [
        (columns["uid"][i], columns["source"][i], columns["stage"][i], columns["reason"][i], columns["detail"][i], rel)
        for i in range(table.num_rows)
    ]


def _tracked_files(run_dir: Path) -> dict[str, str]:
    files = {}
    for kind, pattern in (("shard", SHARD_GLOB), ("download", DOWNLOAD_GLOB), ("drops", DROPS_GLOB)):
        for path in sorted(run_dir.glob(pattern)):
            if path.is_file():
                files[path.relative_to(run_dir).as_posix()] = kind
    return files


def connect(db_path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    else:
        conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def fetch_all(connect, sql: str, params=(), row=dict) -> list:
    """Every row of one query, on a short connection of `connect()`, each made by `row` (dict, tuple)."""
    with closing(connect()) as conn:
        return [row(r) for r in conn.execute(sql, params)]


def fetch_page(connect, source: str, select: str, order: str, params: list, limit: int, offset: int):
    """(rows matching in all, one page of them as dicts) of `SELECT {select} {source} ORDER BY {order}`."""
    with closing(connect()) as conn:
        total = conn.execute(f"SELECT COUNT(*) {source}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT {select} {source} ORDER BY {order} LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
    return total, [dict(row) for row in rows]


def refresh_index(run_dir: str | Path, db_path: str | Path | None = None, rebuild: bool = False) -> RefreshReport:
    """Bring the index up to date: (re)read only the files whose size or mtime changed.

    Reading a tar costs one pass over its headers plus the small members; the images are only
    located (offset, size), so later requests read exactly their own bytes.
    """
    run_dir = Path(run_dir)
    db_path = Path(db_path) if db_path else run_dir / INDEX_PATH
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect(db_path)) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if rebuild or version != INDEX_VERSION:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                conn.execute(f'DROP TABLE "{name}"')  # names come from sqlite_master, not from a user
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            conn.commit()
        known = {row["path"]: row for row in conn.execute("SELECT * FROM files")}
        present = _tracked_files(run_dir)
        indexed, removed, unchanged, failed = [], [], 0, []
        for rel in sorted(set(known) - set(present)):
            with conn:
                _forget(conn, rel, known[rel]["kind"])
            removed.append(rel)
        for rel, kind in present.items():
            stat = (run_dir / rel).stat()
            old = known.get(rel)
            if old is not None and old["size"] == stat.st_size and old["mtime_ns"] == stat.st_mtime_ns:
                unchanged += 1
                continue
            try:
                with conn:
                    if old is not None:
                        _forget(conn, rel, old["kind"])
                    entries = _index_file(conn, run_dir, rel, kind)
                    conn.execute(
                        "INSERT OR REPLACE INTO files (path, kind, size, mtime_ns, entries) VALUES (?, ?, ?, ?, ?)",
                        (rel, kind, stat.st_size, stat.st_mtime_ns, entries),
                    )
            except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as error:
                # The transaction rolled back: the file is not in the index (nor its old entries).
                with conn:
                    _forget(conn, rel, kind)
                failed.append((rel, f"{type(error).__name__}: {error}"))
                continue
            indexed.append(rel)
    return RefreshReport(indexed, removed, unchanged, failed)


def _forget(conn: sqlite3.Connection, rel: str, kind: str) -> None:
    if kind == "shard":
        conn.execute("DELETE FROM sample_keywords WHERE uid IN (SELECT uid FROM samples WHERE tar = ?)", (rel,))
        conn.execute("DELETE FROM samples WHERE tar = ?", (rel,))
    elif kind == "download":
        conn.execute("DELETE FROM downloads WHERE tar = ?", (rel,))
    else:
        conn.execute("DELETE FROM drops WHERE file = ?", (rel,))
    conn.execute("DELETE FROM files WHERE path = ?", (rel,))


def _index_file(conn: sqlite3.Connection, run_dir: Path, rel: str, kind: str) -> int:
    if kind == "shard":
        samples, keywords = _shard_rows(run_dir, rel)
        # A uid seen in an earlier shard keeps its first place; the duplicate is not hidden data
        # loss but a bug upstream, and the browser is not the place to decide between copies.
        conn.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", samples)
        conn.executemany("INSERT INTO sample_keywords (uid, keyword) VALUES (?, ?)", keywords)
        return len(samples)
    if kind == "download":
        rows = _download_rows(run_dir, rel)
        conn.executemany("INSERT OR IGNORE INTO downloads VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)
    rows = _drop_rows(run_dir, rel)
    conn.executemany("INSERT INTO drops VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


UID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


class RunIndex:
    """Read-side queries over the index of one run folder (one short connection per call)."""

    def __init__(self, run_dir: str | Path, db_path: str | Path | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.db_path = Path(db_path) if db_path else self.run_dir / INDEX_PATH

    def connect(self) -> sqlite3.Connection:
        return connect(self.db_path, readonly=True)

    def image_bytes(self, ref: ImageRef) -> bytes:
        """The image's bytes, read from its tar only if the tar is still the one indexed (size and
        mtime); else StaleFileError (FileNotFoundError when it is gone)."""
        path = (self.run_dir / ref.tar).resolve()
        if not path.is_relative_to(self.run_dir):
            raise PermissionError(ref.tar)
        with closing(self.connect()) as conn:
            row = conn.execute("SELECT size, mtime_ns FROM files WHERE path = ?", (ref.tar,)).fetchone()
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if row is None or (row["size"], row["mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
                raise StaleFileError(f"{ref.tar} changed since it was indexed")
            handle.seek(ref.offset)
            return handle.read(ref.size)

    def sample_image(self, uid: str) -> ImageRef | None:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT tar, img_offset, img_size, img_member FROM samples WHERE uid = ? AND img_offset IS NOT NULL",
                (uid,),
            ).fetchone()
        return ImageRef(row[0], row[1], row[2], row[3]) if row else None

    def download_image(self, uid: str) -> ImageRef | None:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT tar, img_offset, img_size, img_member FROM downloads WHERE uid = ?", (uid,)
            ).fetchone()
        return ImageRef(row[0], row[1], row[2], row[3]) if row else None

    def sample(self, uid: str) -> dict | None:
        with closing(self.connect()) as conn:
            row = conn.execute("SELECT * FROM samples WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                return None
            sample = dict(row)
            sample["keywords"] = [
                r[0] for r in conn.execute("SELECT keyword FROM sample_keywords WHERE uid = ? ORDER BY keyword", (uid,))
            ]
            sample["drops"] = [
                dict(r) for r in conn.execute("SELECT stage, reason, detail FROM drops WHERE uid = ?", (uid,))
            ]
        return sample

    def samples(self, filters: "SampleFilter", limit: int, offset: int) -> tuple[int, list[dict]]:
        """One page of samples matching the filter, and how many match in all."""
        where, params = filters.where()
        return fetch_page(self.connect, f"FROM samples s WHERE {where}", "s.*", "s.tar, s.key", params, limit, offset)

    def facets(self) -> dict[str, list]:
        """The values each filter can take, with counts, for the filter form and the overview."""
        queries = {
            "split": "SELECT split, COUNT(*) FROM samples GROUP BY split ORDER BY split",
            "subset": "SELECT subset, COUNT(*) FROM samples GROUP BY subset ORDER BY subset",
            "source": "SELECT source, COUNT(*) FROM samples GROUP BY source ORDER BY source",
            "keyword": "SELECT keyword, COUNT(*) AS n FROM sample_keywords GROUP BY keyword ORDER BY n DESC, keyword "
            "LIMIT 200",
            "table": "SELECT split, subset, source, COUNT(*) FROM samples GROUP BY split, subset, source "
            "ORDER BY split, subset, source",
        }
        return {name: fetch_all(self.connect, sql, row=tuple) for name, sql in queries.items()}

    def drop_counts(self) -> list[tuple]:
        return fetch_all(
            self.connect,
            "SELECT d.stage, d.reason, COUNT(*), COUNT(w.uid) FROM drops d "
            "LEFT JOIN downloads w ON w.uid = d.uid GROUP BY d.stage, d.reason ORDER BY d.stage, d.reason",
            row=tuple,
        )

    def drops(
        self, stage: str | None, reason: str | None, source: str | None, with_image: bool, limit: int, offset: int
    ) -> tuple[int, list[dict]]:
        clauses, params = ["1 = 1"], []
        for column, value in (("stage", stage), ("reason", reason), ("source", source)):
            if value:
                clauses.append(f"d.{column} = ?")
                params.append(value)
        if with_image:
            clauses.append("w.uid IS NOT NULL")
        where = " AND ".join(clauses)
        base = f"FROM drops d LEFT JOIN downloads w ON w.uid = d.uid WHERE {where}"
        select = "d.*, w.uid IS NOT NULL AS has_image"
        return fetch_page(self.connect, base, select, "d.stage, d.reason, d.uid", params, limit, offset)

    def validation_uids(self) -> list[str]:
        with closing(self.connect()) as conn:
            return [r[0] for r in conn.execute("SELECT uid FROM samples WHERE split = 'val' ORDER BY uid")]


SCORE_FIELDS = ("clip_score", "rs_score")


@dataclass(frozen=True)
class SampleFilter:
    """What the sample list is narrowed to; every value reaches SQL as a parameter."""

    split: str | None = None
    subset: str | None = None
    source: str | None = None
    keyword: str | None = None
    text: str | None = None
    score_field: str = "clip_score"
    score_min: float | None = None
    score_max: float | None = None

    def where(self) -> tuple[str, list]:
        if self.score_field not in SCORE_FIELDS:
            raise ValueError(f"score field must be one of {SCORE_FIELDS}")
        clauses, params = ["1 = 1"], []
        for column, value in (("split", self.split), ("subset", self.subset), ("source", self.source)):
            if value:
                clauses.append(f"s.{column} = ?")
                params.append(value)
        if self.keyword:
            clauses.append("s.uid IN (SELECT uid FROM sample_keywords WHERE keyword = ?)")
            params.append(self.keyword.lower())
        if self.text:
            clauses.append("s.caption LIKE ? ESCAPE '\\'")
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        # The column name comes from the fixed tuple above, never from the request.
        if self.score_min is not None:
            clauses.append(f"s.{self.score_field} >= ?")
            params.append(self.score_min)
        if self.score_max is not None:
            clauses.append(f"s.{self.score_field} <= ?")
            params.append(self.score_max)
        return " AND ".join(clauses), params


def sniff_image_type(data: bytes) -> str:
    """`img_content` has no extension: tell the browser what the bytes are."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"
