"""Headless Chromium for the browse tests: the Debian build driven by Playwright, never a download."""

from __future__ import annotations

import os
import shutil
import threading
from argparse import Namespace
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    if os.environ.get("RS5M_CHROMIUM"):
        wanted = os.environ["RS5M_CHROMIUM"]
        return wanted if Path(wanted).is_file() else None
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")


def require_browser():
    """Playwright's sync API and a Chromium binary, or a clear failure (a skip only when asked for)."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, problem = None, "the Python package playwright==1.65.2 is not installed"
    executable = chromium_path()
    if problem is None and executable is None:
        problem = "no Chromium found at /usr/bin/chromium or $RS5M_CHROMIUM (Debian packages chromium, chromium-driver)"
    if problem:
        message = f"{problem}: run `bash tests/install_browser.sh`, or set RS5M_SKIP_BROWSER=1 to skip browser tests"
        if os.environ.get("RS5M_SKIP_BROWSER") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return sync_playwright, executable


@contextmanager
def serving(run_dir: Path):
    """`rs5m browse` on a free loopback port, in a thread of this process."""
    from rs5m.browse.cli import make_browse_server

    app, server = make_browse_server(
        Namespace(run_dir=str(run_dir), host="127.0.0.1", port=0, reindex=False, verbose=False)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(viewport=(1280, 900)):
    sync_playwright, executable = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()
