"""The defaults of config/schema.yaml, for tests that call library functions directly.

Entry functions take every config value as a required argument (defaults live only in the
schema); a test that wants "the configured default" reads it here instead of restating it.
"""

from __future__ import annotations

import dataclasses

from rs5m.configured import defaults
from rs5m.configured import shard_options as configured_shard_options
from rs5m.pub11.crawl_guard import CrawlSettings
from rs5m.pub11.download_part import DownloadSettings, crawl_settings


def schema_defaults(*section: str) -> dict:
    """A copy of the defaults of one config section, e.g. schema_defaults("caption", "rotations")."""
    return defaults(*section)


def keyword_filter_args(**overrides) -> dict:
    """filter_chunk's config arguments as the rule passes them for a source of its own format."""
    metadata = schema_defaults("metadata")
    return {
        "format": None,
        "columns": None,
        "filters": [],
        "index_file": None,
        "max_caption_bytes": metadata["max_caption_bytes"],
        "on_bad_file": metadata["on_bad_file"],
        "threads": 1,
        "memory_limit": None,
        **overrides,
    }


def url_filter_args(**overrides) -> dict:
    """filter_and_dedup_urls's config arguments as the rule passes them."""
    urls = schema_defaults("urls")
    return {
        "allowed": urls["allowed_networks"],
        "blocked_suffixes": urls["blocked_suffixes"],
        "max_length": urls["max_length"],
        "parts_per_host": schema_defaults("download")["parts_per_host"],
        "sha256_columns": {},
        "phash_columns": {},
        "threads": 1,
        "memory_limit": None,
        **overrides,
    }


def pub11_metacaption_args(**overrides) -> dict:
    """pub11_metacaptions's config arguments: the configured seed and season rule, no labels file."""
    metacaption = schema_defaults("metacaption")
    return {
        "stats_path": None,
        "seed": metacaption["seed"],
        "season_rule": metacaption["season_rule"],
        "cc3m_labels": None,
        "threads": 1,
        "memory_limit": None,
        **overrides,
    }


def caption_part_args(**overrides) -> dict:
    """caption_part's sampling, ranking and rotation arguments as the adapter passes them."""
    caption = schema_defaults("caption")
    return {
        "num_candidates": caption["num_candidates"],
        "top_k": caption["top_k"],
        "top_p": caption["top_p"],
        "max_length": caption["max_length"],
        "keep_a": caption["clip_a"]["keep"],
        "keep_b": caption["clip_b"]["keep"],
        "rotation_count": caption["rotations"]["count"],
        "rotation_step": caption["rotations"]["step_degrees"],
        "rotation_model": caption["rotations"]["model"],
        "batch_size": caption["batch_size"],
        "seed": caption["seed"],
        "device": caption["device"],
        "reduced_decode": caption["reduced_decode"],
        **overrides,
    }


def download_settings(**overrides) -> DownloadSettings:
    """The download stage's settings as rules/pub11_download.smk builds them, for one part with the
    robots.txt cache in memory; `overrides` by field (config key) name."""
    return dataclasses.replace(DownloadSettings.from_config({**defaults(), "parts": 1}), **overrides)


def guard_settings(pacing_dir: str | None = None, **overrides) -> CrawlSettings:
    """The crawl guard's settings as run_img2dataset builds them (no proxy, no fetch times kept)."""
    return crawl_settings(download_settings(**overrides), proxy=None, pacing_dir=pacing_dir, timing_dir=None)


def shard_options(**overrides) -> dict:
    """write_subset_shards' config arguments as the shards rule passes them."""
    return {**configured_shard_options(), **overrides}
