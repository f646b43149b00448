"""The defaults of config/schema.yaml, for tests that call library functions directly.

Entry functions take every config value as a required argument (defaults live only in the
schema); a test that wants "the configured default" reads it here instead of restating it.
"""

from __future__ import annotations

import dataclasses

from rs5m.assemble.settings import ShardSettings
from rs5m.configured import config, defaults
from rs5m.pub11.crawl_guard import CrawlSettings
from rs5m.pub11.download_part import DownloadSettings, crawl_settings
from rs5m.pub11.settings import MetadataSettings, SourceSettings, UrlFilterSettings
from rs5m.settings import MetacaptionSettings


def schema_defaults(*section: str) -> dict:
    """A copy of the defaults of one config section, e.g. schema_defaults("caption", "rotations")."""
    return defaults(*section)


def keyword_filter_args(**overrides) -> dict:
    """filter_chunk's arguments as the rule passes them for a source of its own format; the source
    keys (format, columns, filters) and the metadata keys (max_caption_bytes, on_bad_file) among
    `overrides` replace the configured ones."""
    source = {"format": None, "columns": None, "filters": []}
    source.update({key: overrides.pop(key) for key in source if key in overrides})
    metadata = {key: overrides.pop(key) for key in ("max_caption_bytes", "on_bad_file") if key in overrides}
    return {
        "source_settings": SourceSettings(**source),
        "index_file": None,
        "settings": MetadataSettings.from_config(config({"metadata": metadata})),
        "threads": 1,
        "memory_limit": None,
        **overrides,
    }


def url_filter_args(threads: int = 1, memory_limit: str | None = None, **settings) -> dict:
    """filter_and_dedup_urls's arguments: the configured UrlFilterSettings with `settings` fields
    (config key names) replaced, one DuckDB thread, no memory limit."""
    return {
        "settings": dataclasses.replace(UrlFilterSettings.from_config(defaults()), **settings),
        "threads": threads,
        "memory_limit": memory_limit,
    }


def pub11_metacaption_args(metacaption=None, **overrides) -> dict:
    """pub11_metacaptions's arguments: the configured settings (with `metacaption` keys replaced),
    no stats file, no labels file."""
    return {
        "stats_path": None,
        "settings": MetacaptionSettings.from_config(config({"metacaption": metacaption or {}})),
        "cc3m_labels": None,
        "threads": 1,
        "memory_limit": None,
        **overrides,
    }


def download_settings(**overrides) -> DownloadSettings:
    """The download stage's settings as rules/pub11_download.smk builds them, for one part with the
    robots.txt cache in memory; `overrides` by field (config key) name."""
    return dataclasses.replace(DownloadSettings.from_config({**defaults(), "parts": 1}), **overrides)


def guard_settings(pacing_dir: str | None = None, **overrides) -> CrawlSettings:
    """The crawl guard's settings as run_img2dataset builds them (no proxy, no fetch times kept)."""
    return crawl_settings(download_settings(**overrides), proxy=None, pacing_dir=pacing_dir, timing_dir=None)


def shard_settings(**sections) -> ShardSettings:
    """The shard rules' settings with these config sections' keys replaced, e.g.
    shard_settings(split={"val_fraction": 0.2}, shards={"target_bytes": 30_000})."""
    return ShardSettings.from_config(config(sections))
