"""Debian's Chromium driven by Playwright, as every browser test here drives it.

Playwright cannot download its own browsers on this machine, so it launches the system one by
``executable_path``, headless, with a fresh profile (Playwright makes a temporary
``--user-data-dir`` for every launch and removes it after) and nothing that phones home.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A launched browser (``playwright.sync_api.Browser``), closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
