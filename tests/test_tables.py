"""One schema per table (rs5m.tables), each stage's derived from the one before, and the demo's
stage outputs written with exactly these schemas."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from rs5m import tables as T
from rs5m.columns import NATIVE, NATIVE_PREFIX


def test_each_stage_schema_extends_the_one_it_reads():
    assert list(T.KEYWORD_SCHEMA)[:2] == list(T.SAMPLE_ID_SCHEMA) == list(T.IMAGES_SCHEMA)[:2]
    assert list(T.URLDEDUP_SCHEMA)[:-1] == list(T.KEYWORD_SCHEMA) and T.URLDEDUP_SCHEMA.names[-1] == NATIVE
    assert list(T.PUB11_META_SCHEMA) == [*T.SAMPLE_ID_SCHEMA, *T.META_FIELDS]
    image = list(T.RS3_IMAGE_SCHEMA)
    assert list(T.RS3_READ_SCHEMA)[:4] == image and list(T.RS3_META_SCHEMA) == [*image, *T.META_FIELDS]
    # The captioned table is the meta-caption table with the captions inserted, nothing dropped.
    captioned = T.RS3_CAPTION_SCHEMA
    assert [f for f in captioned if f.name in T.RS3_META_SCHEMA.names] == list(T.RS3_META_SCHEMA)
    assert captioned.names == [
        *T.RS3_IMAGE_SCHEMA.names,
        "caption",
        "top_cap",
        "ssl_cap",
        "meta_caption",
        "labels",
        "geo",
        "caption_choice",
    ]
    # The same column has the same type in every table that holds it (width/height: the keyword
    # stage keeps the sources' int64, the image stages the decoded int32).
    types: dict[str, set] = {}
    for schema in (T.KEYWORD_SCHEMA, T.URLDEDUP_SCHEMA, T.PUB11_META_SCHEMA, T.RS3_READ_SCHEMA, T.RS3_CAPTION_SCHEMA):
        for field in schema:
            types.setdefault(field.name, set()).add(str(field.type))
    assert {name: t for name, t in types.items() if len(t) > 1} == {
        "width": {"int64", "int32"},
        "height": {"int64", "int32"},
    }


# Stage outputs of a finished run and the schema each is written with (exactly, or as a prefix
# followed by the source's native `src_*` columns).
STAGE_TABLES = {
    "results/pub11/metadata/*/*[0-9].parquet": (T.KEYWORD_SCHEMA, "native columns"),
    "results/pub11/urldedup/*.parquet": (T.URLDEDUP_SCHEMA, "exact"),
    "results/pub11/images/*[0-9].parquet": (T.IMAGES_SCHEMA, "exact"),
    "results/pub11/metacaption.parquet": (T.PUB11_META_SCHEMA, "exact"),
    "results/rs3/read/fmow.parquet": (T.RS3_READ_SCHEMA, "exact"),
    "results/rs3/read/bigearthnet.parquet": (T.RS3_READ_SCHEMA, "exact"),
    "results/rs3/read/millionaid.parquet": (T.RS3_READ_SCHEMA, "exact"),
    "results/rs3/metacaption/*.parquet": (T.RS3_META_SCHEMA, "exact"),
    "results/rs3/caption/*[0-9].parquet": (T.RS3_CAPTION_SCHEMA, "exact"),
    "results/rs3/captioned.parquet": (T.RS3_CAPTION_SCHEMA, "exact"),
}


def check_stage_tables(run: Path) -> int:
    """Assert every stage output of `run` has its declared schema; returns the files checked."""
    checked = 0
    for pattern, (expected, how) in STAGE_TABLES.items():
        paths = sorted(run.glob(pattern))
        assert paths, f"no {pattern} in {run}"
        for path in paths:
            schema = pq.read_schema(path).remove_metadata()
            if how == "exact":
                assert schema.equals(expected), f"{path.relative_to(run)}:\n{schema}\n!=\n{expected}"
            else:
                head = schema.empty_table().select(list(range(len(expected)))).schema
                assert head.equals(expected), f"{path.relative_to(run)}:\n{schema}"
                assert all(n.startswith(NATIVE_PREFIX) for n in schema.names[len(expected) :]), path
            checked += 1
    return checked


def test_demo_stage_outputs_have_the_declared_schemas(demo_run):
    assert check_stage_tables(demo_run) >= len(STAGE_TABLES)
