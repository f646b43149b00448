"""The Arrow schema of every table a stage chain passes on, each declared once.

A stage's table is derived from the table it reads (fields appended, inserted or selected), so a
column is spelled in one place and its type cannot drift between stages. Field order and types
are the files' (a writer casts to these schemas; the parquet files do not change).

PUB11: keyword filter -> URL filter (+ `native`); the image check keeps the sample id and adds
where the image lies; the meta-captions add the caption fields to the sample id.
RS3: reader -> meta-captions -> captioning (+ the three captions and `caption_choice`).
Tables of one stage only (ledger drops, scores, caption candidates, decontamination features and
matches, the GPE table, the BigEarthNet mapping) are declared beside their writer.
"""

from __future__ import annotations

import pyarrow as pa

from rs5m import columns as C

# --------------------------------------------------------------------------------------------- PUB11
# Every PUB11 table starts with the sample id.
SAMPLE_ID_SCHEMA = pa.schema([(C.UID, pa.string()), (C.SOURCE, pa.string())])

# results/pub11/metadata/{source}/{chunk}.parquet, before the native `src_*` columns of the source.
KEYWORD_SCHEMA = pa.schema(
    [
        *SAMPLE_ID_SCHEMA,
        (C.URL, pa.string()),
        (C.CAPTION, pa.string()),
        (C.CAPTIONS, pa.list_(pa.string())),
        (C.MATCHED_KEYWORDS, pa.list_(pa.string())),
        (C.WIDTH, pa.int64()),
        (C.HEIGHT, pa.int64()),
    ]
)

# results/pub11/urldedup/{part}.parquet: the keyword columns, the `src_*` columns folded into `native`.
URLDEDUP_SCHEMA = KEYWORD_SCHEMA.append(pa.field(C.NATIVE, pa.string()))

# results/pub11/images/{part}.parquet: the valid images of a download part (width/height as decoded).
IMAGES_SCHEMA = pa.schema(
    [
        *SAMPLE_ID_SCHEMA,
        (C.TAR, pa.string()),
        (C.MEMBER, pa.string()),
        (C.WIDTH, pa.int32()),
        (C.HEIGHT, pa.int32()),
        (C.PHASH, pa.int64()),
    ]
)

# The meta-caption fields both subsets carry (SPEC 4).
META_FIELDS = [
    pa.field(C.META_CAPTION, pa.string()),
    pa.field(C.LABELS, pa.list_(pa.string())),
    pa.field(C.GEO, pa.string()),
]

# results/pub11/metacaption.parquet
PUB11_META_SCHEMA = pa.schema([*SAMPLE_ID_SCHEMA, *META_FIELDS])

# ----------------------------------------------------------------------------------------------- RS3
# Every RS3 table starts with the image's id and where it lies.
RS3_IMAGE_SCHEMA = pa.schema(
    [
        (C.UID, pa.string()),
        (C.DATASET, pa.string()),
        (C.IMG_NAME, pa.string()),
        (C.IMAGE_PATH, pa.string()),
    ]
)

# results/rs3/read/{dataset}.parquet
RS3_READ_SCHEMA = pa.schema(
    [
        *RS3_IMAGE_SCHEMA,
        ("source_path", pa.string()),
        ("split", pa.string()),
        (C.LABELS, pa.list_(pa.string())),
        ("meta", pa.string()),
        ("meta_status", pa.string()),
        (C.WIDTH, pa.int32()),
        (C.HEIGHT, pa.int32()),
    ]
)

# results/rs3/metacaption/{part}.parquet: the image columns and the meta-caption fields.
RS3_META_SCHEMA = pa.schema([*RS3_IMAGE_SCHEMA, *META_FIELDS])


def _captioned(meta: pa.Schema) -> pa.Schema:
    """The meta-caption table with the three captions after the image columns, and the choice last."""
    schema = meta
    for offset, name in enumerate((C.CAPTION, "top_cap", "ssl_cap")):
        schema = schema.insert(len(RS3_IMAGE_SCHEMA) + offset, pa.field(name, pa.string()))
    return schema.append(pa.field("caption_choice", pa.string()))


# results/rs3/caption/{part}.parquet and results/rs3/captioned.parquet
RS3_CAPTION_SCHEMA = _captioned(RS3_META_SCHEMA)
