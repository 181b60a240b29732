"""Headless Chromium for the tests that open a written page (report.html, study.html)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str | None:
    """Debian's chromium, or None; missing on CI is a failure (.ci/run installs it)."""
    found = shutil.which("chromium")
    if found is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    return found


def page_body(page: Path | str, profile: Path) -> tuple[str, str]:
    """``(the <body> tag, the whole DOM)`` of ``page`` (a file, or a URL) after it loaded in
    headless Chromium (the test is skipped where there is no chromium)."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri() if isinstance(page, Path) else page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return dom[dom.index("<body") : dom.index(">", dom.index("<body"))], dom
