"""Download stage, crawl guard in img2dataset's workers: its Downloader with `rs5m.pub11.crawl_guard` installed.

img2dataset pickles the Downloader into each (spawned) worker process; this subclass installs the
guard there before the first shard, so every connection of every worker goes through it.
"""

from __future__ import annotations

from img2dataset.downloader import Downloader

from rs5m.pub11.crawl_guard import activate


class GuardedDownloader(Downloader):
    def __init__(self, *args, crawl_settings: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.crawl_settings = crawl_settings  # CrawlSettings.to_json()

    def __call__(self, row):
        guard = activate(self.crawl_settings)
        try:
            return super().__call__(row)
        finally:
            guard.flush_times()  # a finished shard's fetch times are on disk for `rs5m status`
