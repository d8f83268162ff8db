"""A real headless Chromium (Debian's package) for tests that check what a person sees.

`make test` installs it when missing (scripts/install-browser); a test that needs it fails with
that advice instead of being skipped, so a machine without a browser cannot pass silently.
Each call gets a fresh profile folder and every background service Chromium would otherwise
reach out to is switched off: the only thing it loads is the local file.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--disable-features=Translate,MediaRouter,OptimizationHints")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("No Chromium on PATH: run `make browser` (or: apt-get install -y chromium).")


def _run(page: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="bulkmeet-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL)


def dump_dom(page: Path) -> str:
    """The DOM after Chromium has loaded and laid out the page, serialised."""
    result = _run(page, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, *, width: int = 1000, height: int = 1100) -> Path:
    result = _run(page, f"--screenshot={png}", f"--window-size={width},{height}")
    assert result.returncode == 0 and png.is_file(), result.stderr[-2000:]
    return png
