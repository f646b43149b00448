"""Browse: a local web app to look through a finished run's shards and drops, and rate captions.

Reads `results/shards`, `results/pub11/download`, the ledger and `results/stats`; writes
`results/browse/index.sqlite` and `results/ratings.sqlite` (see docs/browse.md).
"""

from rs5m.browse.cli import add_browse_parser, main_browse
from rs5m.browse.web import BrowseApp

__all__ = ["BrowseApp", "add_browse_parser", "main_browse"]
