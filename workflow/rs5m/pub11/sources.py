"""PUB11 sources: the eleven native metadata formats, as DuckDB relations with one column mapping.

Reads the sources' own files (parquet, TSV, JSON); no output of its own (see `rs5m.pub11.keyword_filter`).
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# Large enough for a whole RedCaps annotation file or Visual Genome's region file in one object.
MAX_JSON_OBJECT_BYTES = 2**31 - 1

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
    # SQL over the native columns; rows failing it are counted under `row_filter_reason`.
    row_filter: str | None = None
    row_filter_reason: str | None = None
    # SQL expressions for caption fields that need decoding (default: the column itself).
    caption_sql: dict[str, str] = field(default_factory=dict)
    rejects_lines: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.url, *self.captions, *self.list_captions)

    @property
    def is_parquet(self) -> bool:
        return self.relation is _parquet

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
            row_filter="language = 'en'",
            row_filter_reason="not_english",
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
