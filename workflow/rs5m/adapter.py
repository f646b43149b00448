"""Glue between a Snakemake `script:` and a library call: logging to the rule's log file.

Adapters in workflow/scripts call `run(snakemake, function, **kwargs)` and nothing else.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable


def setup_logging(log_path: str | None) -> logging.Logger:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("rs5m")


def run(smk: Any, function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call `function(**kwargs)` with the rule's log set up; log the wall time; re-raise errors."""
    log_path = str(smk.log[0]) if len(smk.log) else None
    logger = setup_logging(log_path)
    started = time.perf_counter()
    logger.info("rule %s: %s", smk.rule, function.__module__ + "." + function.__name__)
    try:
        result = function(**kwargs)
    except Exception:
        logger.exception("rule %s failed", smk.rule)
        raise
    logger.info("rule %s done in %.1f s", smk.rule, time.perf_counter() - started)
    return result
