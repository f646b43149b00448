"""The ledger's drop reasons: every stage's, in one registry the audit and the funnel read.

A reason string is an interface (the ledger files, the funnel, the audit): it is never renamed.
Each stage's reasons are registered below, one small table per stage in DAG order; a stage module
takes its reasons from here (`reasons_of(STAGE)`), and the audit and the funnel read them without
importing any stage. A new reason is added to its stage's table; the audit refuses a recorded reason that its
stage did not register (`tests/test_reasons.py` checks the stage modules' constants are here).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageReasons:
    """The closed set of reasons one ledger stage records."""

    stage: str
    reasons: tuple[str, ...]  # every reason, each once
    count_only: tuple[str, ...] = ()  # counted without a drop record (a subset of `reasons`)


REGISTRY: dict[str, StageReasons] = {}


def register(stage: str, reasons: tuple[str, ...], count_only: tuple[str, ...] = ()) -> StageReasons:
    """Add a stage's reasons; registering the same stage again must give the same reasons."""
    entry = StageReasons(stage, tuple(dict.fromkeys(reasons)), tuple(count_only))
    if not set(entry.count_only) <= set(entry.reasons):
        raise ValueError(f"{stage}: count-only reasons {entry.count_only} not among {entry.reasons}")
    if REGISTRY.setdefault(stage, entry) != entry:
        raise ValueError(f"{stage}: reasons registered twice, differently")
    return entry


def reasons_of(stage: str) -> tuple[str, ...]:
    """Every reason the stage may record."""
    return REGISTRY[stage].reasons


def count_only_of(stage: str) -> tuple[str, ...]:
    """The stage's reasons that are counted without a drop record."""
    return REGISTRY[stage].count_only


def count_only_reasons() -> frozenset[str]:
    """Every stage's count-only reasons."""
    return frozenset(reason for entry in REGISTRY.values() for reason in entry.count_only)


# Reasons one stage names and another reads (the funnel splits the URL stage's drops by them).
DUPLICATE_URL = "duplicate_url"
DUPLICATE_POOL_HASH = "duplicate_pool_hash"

# The stages' tables, in DAG order. PUB11:
register(
    "keyword_filter",
    ("undecodable_row", "null_url", "bad_url_scheme", "null_caption", "caption_too_long")
    # Counted only: they cover almost every row of a web crawl (source filters, a DFN index).
    + ("no_keyword_match", "not_english", "source_filter", "not_in_index"),
    count_only=("no_keyword_match", "not_english", "source_filter", "not_in_index"),
)
register("url_filter", ("bad_url", "bad_url_scheme", "blocked_url", DUPLICATE_URL, DUPLICATE_POOL_HASH))
register(
    "download",
    ("download_failed", "download_missing", "robots_disallowed", "hash_mismatch")
    # The crawl guard's (rs5m.pub11.crawl_guard.REASONS).
    + ("blocked_address", "blocked_redirect", "download_too_large", "download_timeout", "rate_limited"),
)
register("invalid", ("invalid_empty", "invalid_decode", "invalid_too_many_pixels", "invalid_too_small"))
register("image_dedup", ("duplicate_image",))
# A pair failing both tests is one combined reason, so the ledger adds up.
register("outliers", ("low_clip_score", "low_rs_score", "low_clip_score;low_rs_score", "undecodable_image"))
register("decontamination", ("eval_overlap",))  # RS3 too
# RS3:
register(
    "rs3_read",
    (
        "missing_image",
        "unreadable_image",
        "missing_patch",
        "missing_band",
        "unreadable_raster",
        "band_shape_mismatch",
        "duplicate_name",
    ),
)
register("rs3_caption", ("unreadable_image", "empty_caption"))
