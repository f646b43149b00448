"""PUB11 sources: the eleven native metadata formats and table sources with a column mapping, as DuckDB relations.

Reads the sources' own files (parquet, CSV/TSV, JSON/JSONL); no output of its own (see `rs5m.pub11.keyword_filter`).

Table sources (`format: table` and the presets `datacomp`, `relaion`, `pd12m`, `dfn`) name their
columns in `sources.<name>.columns`; `filters` (SQL over the native columns) and a DFN-style `index_file`
become row filters, each with its own count-only drop reason.

Size: every format, native or mapped, ends in the one SourceFormat the keyword filter reads, so
the relations, the presets and the index lookup they share live together.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

# Large enough for a whole RedCaps annotation file or Visual Genome's region file in one object.
MAX_JSON_OBJECT_BYTES = 2**31 - 1

# The 17 columns of the official WIT TSV files (wit_v1.train.all-*.tsv.gz), in file order.
WIT_COLUMNS = (
    "language",
    "page_url",
    "image_url",
    "page_title",
    "section_title",
    "hierarchical_section_title",
    "caption_reference_description",
    "caption_attribution_description",
    "caption_alt_text_description",
    "mime_type",
    "original_height",
    "original_width",
    "is_main_image",
    "attribution_passes_lang_id",
    "page_changed_recently",
    "context_page_description",
    "context_section_description",
)
YFCC100M_COLUMNS = (
    "line_number",
    "photo_id",
    "photo_hash",
    "user_id",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "user_tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "download_url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension_original",
    "marker",
)


class SourceFormatError(ValueError):
    """A file does not have the columns its declared format needs."""


def sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _parquet(path: str) -> str:
    return f"read_parquet({sql_string(path)})"


def _headerless_tsv(*columns: str) -> Callable[[str], str]:
    spec = "{" + ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in columns) + "}"

    def relation(path: str) -> str:
        return (
            f"read_csv({sql_string(path)}, delim='\\t', header=false, quote='', escape='', "
            f"auto_detect=false, columns={spec}, ignore_errors=true, store_rejects=true)"
        )

    return relation


def _headered_tsv(path: str) -> str:
    # WIT quotes fields that hold tabs or line breaks ("..." with "" inside). all_varchar keeps
    # the 17 columns as written; a malformed line is rejected, not guessed.
    return (
        f"read_csv({sql_string(path)}, delim='\\t', header=true, quote='\"', escape='\"', "
        f"all_varchar=true, ignore_errors=true, store_rejects=true)"
    )


def json_object_limit(path: str) -> int:
    """read_json's `maximum_object_size` for a file: DuckDB allocates a buffer of twice it within
    the connection's memory limit (rs5m.duck), so it follows the file's size (a whole file may be
    one object; a compressed one may expand 16-fold), up to MAX_JSON_OBJECT_BYTES."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return MAX_JSON_OBJECT_BYTES
    if path.endswith((".gz", ".zst")):
        size *= 16
    return int(min(MAX_JSON_OBJECT_BYTES, size + (1 << 20)))


def _json(path: str) -> str:
    return f"read_json({sql_string(path)}, maximum_object_size={json_object_limit(path)})"


def _redcaps(path: str) -> str:
    return f"(SELECT unnest(annotations, recursive := true) FROM {_json(path)})"


def _sbu(path: str) -> str:
    # Column-wise JSON: unnesting the three lists in one SELECT zips them row by row.
    return (
        f"(SELECT unnest(image_urls) AS image_urls, unnest(captions) AS captions, "
        f"unnest(user_ids) AS user_ids FROM {_json(path)})"
    )


def _visual_genome(path: str) -> str:
    regions = Path(path).with_name("region_descriptions.json")
    if not regions.exists():
        raise SourceFormatError(
            f"{path}: Visual Genome needs region_descriptions.json beside image_data.json ({regions} is missing)"
        )
    return (
        f"(SELECT images.*, list_transform(r.regions, lambda region: region.phrase) AS region_phrases "
        f"FROM {_json(path)} AS images LEFT JOIN {_json(str(regions))} AS r ON r.id = images.image_id)"
    )


def _plus_decoded(column: str) -> str:
    # YFCC100M titles and descriptions are form-encoded: '+' is a space, '%2B' a plus.
    return f"url_decode(replace({quote_ident(column)}, '+', ' '))"


@dataclass(frozen=True)
class SourceFormat:
    """How to read one native format and where its URL, captions and size are."""

    name: str
    relation: Callable[[str], str]
    url: str
    captions: tuple[str, ...]
    list_captions: tuple[str, ...] = ()
    width: str | None = None
    height: str | None = None
    # (SQL over the native columns, drop reason) in order: a row failing one is counted under the
    # reason of the first filter it fails.
    row_filters: tuple[tuple[str, str], ...] = ()
    # SQL expressions for caption fields that need decoding (default: the column itself).
    caption_sql: dict[str, str] = field(default_factory=dict)
    rejects_lines: bool = False
    # A DFN-style index (`index_rows`): the .npy file and the column holding the pool's uid.
    index_file: str | None = None
    index_column: str | None = None

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.url, *self.captions, *self.list_captions, *([self.index_column] if self.index_column else []))

    def rejects(self, path: str) -> bool:
        """Whether reading `path` records unparsable lines in DuckDB's reject tables (CSV/TSV)."""
        return self.rejects_lines and (self.relation is not _table or _table_kind(path) in ("csv", "tsv"))

    def reads_parquet(self, path: str) -> bool:
        """Whether `path` is read with read_parquet (then the keyword scan pre-selects rows in bulk)."""
        return self.relation is _parquet or (self.relation is _table and _table_kind(path) == "parquet")

    @property
    def row_filter(self) -> str | None:
        """All row filters together (NULL counts as failing)."""
        if not self.row_filters:
            return None
        return " AND ".join(f"coalesce(({sql}), false)" for sql, _ in self.row_filters)

    def caption_expression(self, column: str) -> str:
        return self.caption_sql.get(column, f"CAST({quote_ident(column)} AS VARCHAR)")


_LAION = dict(relation=_parquet, url="URL", captions=("TEXT",), width="WIDTH", height="HEIGHT")

FORMATS: dict[str, SourceFormat] = {
    f.name: f
    for f in (
        SourceFormat("laion2b", **_LAION),
        SourceFormat("laion400m", **_LAION),
        SourceFormat(
            "laioncoco",
            relation=_parquet,
            url="URL",
            captions=("TEXT", "top_caption"),
            list_captions=("all_captions",),
            width="WIDTH",
            height="HEIGHT",
        ),
        SourceFormat("coyo700m", relation=_parquet, url="url", captions=("text",), width="width", height="height"),
        SourceFormat(
            "wit",
            relation=_headered_tsv,
            url="image_url",
            captions=(
                "caption_reference_description",
                "caption_attribution_description",
                "caption_alt_text_description",
            ),
            width="original_width",
            height="original_height",
            row_filters=(("language = 'en'", "not_english"),),
            rejects_lines=True,
        ),
        SourceFormat(
            "yfcc15m",
            relation=_headerless_tsv(*YFCC100M_COLUMNS),
            url="download_url",
            captions=("title", "description"),
            caption_sql={"title": _plus_decoded("title"), "description": _plus_decoded("description")},
            rejects_lines=True,
        ),
        SourceFormat(
            "cc12m", relation=_headerless_tsv("url", "caption"), url="url", captions=("caption",), rejects_lines=True
        ),
        SourceFormat(
            "cc3m", relation=_headerless_tsv("caption", "url"), url="url", captions=("caption",), rejects_lines=True
        ),
        SourceFormat("redcaps", relation=_redcaps, url="url", captions=("caption",)),
        SourceFormat("sbu", relation=_sbu, url="image_urls", captions=("captions",)),
        SourceFormat(
            "vg",
            relation=_visual_genome,
            url="url",
            captions=(),
            list_captions=("region_phrases",),
            width="width",
            height="height",
        ),
    )
}

# ------------------------------------------------------------------------------ table sources
_TABLE_SUFFIXES = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def _table_kind(path: str) -> str:
    """parquet, csv, tsv or jsonl, from the file name (a `.gz`/`.zst` suffix is looked through)."""
    name = path.lower()
    for compressed in (".gz", ".zst"):
        name = name.removesuffix(compressed)
    kind = _TABLE_SUFFIXES.get(os.path.splitext(name)[1])
    if kind is None:
        raise SourceFormatError(
            f"{path}: a table source reads .parquet, .csv, .tsv or .jsonl files (optionally .gz); "
            "this name has none of these suffixes"
        )
    return kind


def _table(path: str) -> str:
    kind = _table_kind(path)
    if kind == "parquet":
        return _parquet(path)
    if kind == "jsonl":
        return (
            f"read_json({sql_string(path)}, format='newline_delimited', maximum_object_size={json_object_limit(path)})"
        )
    # Column types are sniffed (numbers stay numbers for `filters:`); a line that does not parse is
    # rejected and recorded as `undecodable_row`, not guessed.
    delim = "\\t" if kind == "tsv" else ","
    return (
        f"read_csv({sql_string(path)}, delim='{delim}', header=true, quote='\"', escape='\"', "
        f"ignore_errors=true, store_rejects=true)"
    )


# Column roles of `sources.<name>.columns`; any other key is kept as a name for the reader.
TABLE_COLUMN_ROLES = ("url", "caption", "id", "width", "height", "sha256", "phash")
# Drop reasons of the row filters of a table source (count-only, like no_keyword_match).
FILTER_REASON = "source_filter"
INDEX_REASON = "not_in_index"

# Presets: the public column layouts of today's pools (README, "Sources of 2026").
TABLE_PRESETS: dict[str, dict[str, Any]] = {
    # DataComp CommonPool metadata parquet (mlfoundations/datacomp_pools): sha256 of the image bytes.
    "datacomp": {
        "url": "url",
        "caption": "text",
        "id": "uid",
        "width": "original_width",
        "height": "original_height",
        "sha256": "sha256",
    },
    # Re-LAION-5B research / research-safe parquet: LAION's layout (its `hash` hashes URL and text).
    "relaion": {"url": "URL", "caption": "TEXT", "width": "WIDTH", "height": "HEIGHT"},
    # PD12M (Spawning/PD12M metadata/*.parquet): `hash` is an MD5 of the image, not a sha256.
    "pd12m": {"url": "url", "caption": "caption", "id": "id", "width": "width", "height": "height"},
}
# DFN-2B: CommonPool parquet parts, restricted to the uids of an index file.
TABLE_PRESETS["dfn"] = dict(TABLE_PRESETS["datacomp"])
TABLE_FORMATS = ("table", *TABLE_PRESETS)


def table_columns(format: str | None, columns: Mapping[str, Any] | None) -> dict[str, Any]:  # noqa: A002
    """A source's column mapping: the preset's (if any) with the non-null `columns` on top; an empty
    string unsets a preset's column."""
    merged = {**TABLE_PRESETS.get(format or "", {}), **{k: v for k, v in (columns or {}).items() if v is not None}}
    return {role: name for role, name in merged.items() if name not in ([], "")}


def pool_hash_columns(sources: Mapping[str, Mapping[str, Any]], kind: str) -> dict[str, str]:
    """{source: native column} of the sources whose mapping names a `kind` (sha256 or phash) column.

    `sources`: the validated `sources` config; a native format's `columns` may name only these two.
    """
    found = {}
    for name, settings in sources.items():
        column = table_columns(settings.get("format"), settings.get("columns")).get(kind)
        if column:
            found[name] = str(column)
    return dict(sorted(found.items()))


def build_format(
    format: str,  # noqa: A002 - the config key's name (sources.<name>.format)
    columns: Mapping[str, Any] | None,
    filters: Sequence[str],
    index_file: str | None,
) -> SourceFormat:
    """The SourceFormat of one source's config: a native format (with optional `filters`), or a table
    source from its column mapping, `filters` and (for `dfn`) `index_file`."""
    if format not in TABLE_FORMATS:
        fmt = FORMATS[format]
        extra = set(table_columns(None, columns)) - {"sha256", "phash"}
        if extra:
            raise SourceFormatError(
                f"format {format!r} has its own columns; `columns` may only name sha256/phash here (got {sorted(extra)})"
            )
        if index_file:
            raise SourceFormatError(f"format {format!r}: `index_file` is for table sources (format dfn or table)")
        return replace(fmt, row_filters=fmt.row_filters + tuple((f, FILTER_REASON) for f in filters))
    mapping = table_columns(format, columns)
    if "url" not in mapping or "caption" not in mapping:
        raise SourceFormatError(f"format {format!r} needs `columns.url` and `columns.caption` (got {mapping})")
    if format == "dfn" and not index_file:
        raise SourceFormatError("format 'dfn' needs `index_file`: the .npy file of selected CommonPool uids")
    if index_file and "id" not in mapping:
        raise SourceFormatError("an `index_file` selects rows by uid: set `columns.id` (CommonPool: uid)")
    caption = mapping["caption"]
    captions = (caption,) if isinstance(caption, str) else tuple(caption)
    row_filters = tuple((f, FILTER_REASON) for f in filters)
    if index_file:
        row_filters = (
            (f"{quote_ident(mapping['id'])} IN (SELECT uid FROM {INDEX_TABLE})", INDEX_REASON),
        ) + row_filters
    return SourceFormat(
        format,
        relation=_table,
        url=mapping["url"],
        captions=captions,
        width=mapping.get("width"),
        height=mapping.get("height"),
        row_filters=row_filters,
        rejects_lines=True,
        index_file=index_file,
        index_column=mapping["id"] if index_file else None,
    )


# --------------------------------------------------------------------------- DFN-style index files
# The DuckDB table a file's selected uids are registered as before it is read.
INDEX_TABLE = "_index_uids"
INDEX_DTYPE = np.dtype("u8,u8")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def uid_pairs(uids: Sequence[str | None]) -> np.ndarray:
    """CommonPool uids (32 hex digits) as DataComp's subset-file pairs (high 64 bits, low 64 bits);
    a missing or malformed uid becomes (0, 0), which no index holds in practice."""
    clean = "".join(u if isinstance(u, str) and _HEX32.fullmatch(u) else "0" * 32 for u in uids)
    halves = np.frombuffer(bytes.fromhex(clean), ">u8").reshape(-1, 2).astype(np.uint64)
    pairs = np.zeros(len(uids), INDEX_DTYPE)
    if len(uids):
        pairs["f0"], pairs["f1"] = halves[:, 0], halves[:, 1]
    return pairs


def load_index(path: str) -> np.ndarray:
    """A DataComp subset file (dfn_2b_inds.npy): a sorted structured array of (u8, u8) uid pairs,
    memory-mapped (DFN-2B's is ~30 GB; a lookup touches ~log2(n) pages per uid)."""
    index = np.load(path, mmap_mode="r")
    if index.dtype != INDEX_DTYPE:
        raise SourceFormatError(
            f"{path}: an index holds DataComp uid pairs (dtype {INDEX_DTYPE}); this file has dtype {index.dtype}"
        )
    return index


def in_index(index: np.ndarray, uids: Sequence[str | None]) -> np.ndarray:
    """Which `uids` the sorted `index` holds: one vectorised binary search over the memory map."""
    pairs = uid_pairs(uids)
    hi, lo = pairs["f0"], pairs["f1"]
    low = np.zeros(len(pairs), np.int64)
    high = np.full(len(pairs), len(index), np.int64)
    while True:
        active = low < high
        if not active.any():
            break
        mid = (low + high) // 2
        probe = index[np.minimum(mid, max(len(index) - 1, 0))] if len(index) else np.zeros(len(pairs), INDEX_DTYPE)
        less = (probe["f0"] < hi) | ((probe["f0"] == hi) & (probe["f1"] < lo))
        low = np.where(active & less, mid + 1, low)
        high = np.where(active & ~less, mid, high)
    found = low < len(index)
    if len(index):
        at = index[np.minimum(low, len(index) - 1)]
        found &= (at["f0"] == hi) & (at["f1"] == lo)
    return found


# Each source's native format when its config names none.
DEFAULT_FORMAT = {
    "laion2b": "laion2b",
    "coyo700m": "coyo700m",
    "laioncoco": "laioncoco",
    "laion400m": "laion400m",
    "wit": "wit",
    "yfcc15m": "yfcc15m",
    "cc12m": "cc12m",
    "redcaps": "redcaps",
    "cc3m": "cc3m",
    "sbu": "sbu",
    "vg": "vg",
}

_GLOB_CHARS = set("*?[")


def resolve_files(patterns: list[str], produced_prefixes: tuple[str, ...] = ()) -> list[str]:
    """The files a source's `paths:` name, sorted and without repeats.

    A pattern with glob characters expands against the working directory now. A literal path is
    kept if it exists or lies under one of `produced_prefixes` (folders a rule of the workflow
    writes, such as the demo's inputs); otherwise it is reported and left out.
    """
    files: set[str] = set()
    for pattern in patterns:
        if _GLOB_CHARS & set(pattern):
            files.update(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        elif os.path.exists(pattern) or pattern.startswith(produced_prefixes):
            files.add(pattern)
        else:
            log.warning("input path %s does not exist; left out", pattern)
    return sorted(files)


def plan_chunks(files: list[str], files_per_job: int) -> dict[str, list[str]]:
    """Group sorted files into chunks of `files_per_job`; chunk ids are `00000`, `00001`, ...

    The files of one source must have distinct names: sample ids hash the file name
    (rs5m.columns.make_uid), so two files of one name would give their rows the same ids.
    """
    if files_per_job < 1:
        raise ValueError("files_per_job must be at least 1")
    by_name: dict[str, str] = {}
    for path in files:
        name = os.path.basename(path)
        if name in by_name:
            raise ValueError(
                f"input files {by_name[name]} and {path} share the name {name!r}: sample ids are made from "
                "the source, the file name and the URL, so the files of one source need distinct names"
            )
        by_name[name] = path
    return {
        f"{index:05d}": files[start : start + files_per_job]
        for index, start in enumerate(range(0, len(files), files_per_job))
    }
