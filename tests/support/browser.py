"""A real browser for the CORS tests: headless Chromium (Debian's package, or $KVSTORE_CHROMIUM) driven
by Playwright for Python, and a static page served on an origin of its own.

Without Chromium (or Playwright) a developer's run warns loudly and skips; under CI=true it fails,
so CI can never pass without the browser test having run."""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ENV = "KVSTORE_CHROMIUM"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install chromium) or set KVSTORE_CHROMIUM=/path/to/chrome"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>kvstore CORS page</title></head>
<body><h1>kvstore from another origin</h1><input type="file" id="file"></body></html>
"""


def find_chromium() -> str | None:
    """The Chromium to drive: $KVSTORE_CHROMIUM, else the first of CHROMIUM_CANDIDATES found."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def missing_browser(reason: str) -> None:
    """No browser to test with: a failure under CI=true, else a loud warning and a skip."""
    message = f"browser test not run: {reason}; {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the browser test must run)", pytrace=False)
    warnings.warn(message, UserWarning, stacklevel=2)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Callable[[str], Any]]:
    """Headless Chromium: yields ``open_page(origin)``, a new page at that origin's index.html."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_browser("Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    executable = find_chromium()
    if executable is None:
        missing_browser("no Chromium found")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])

        def open_page(origin: str) -> Any:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{origin}/index.html")
            return page

        try:
            yield open_page
        finally:
            browser.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(root: Path) -> Iterator[str]:
    """Serves ``root`` (with PAGE as index.html) on a free port of 127.0.0.1: its URL, an origin of its own."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Headless Chromium itself (a Playwright ``Browser``), for tests that open their own pages and
    contexts (tests/system/test_console_browser.py); the same warn-or-fail as ``chromium()``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_browser("Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    executable = find_chromium()
    if executable is None:
        missing_browser("no Chromium found")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
