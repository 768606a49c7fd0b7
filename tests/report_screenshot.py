"""Test-only: render results/report.html in headless Chromium, save report.png beside it, list console errors.

    python tests/report_screenshot.py results/report.html      # writes results/report.png

Never run by the suite itself (a benchmark run starts no browser). Needs Debian's ``chromium``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Tuple

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> Optional[str]:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def render(page: str, png: Optional[str] = None, width: int = 1280, height: int = 2400) -> Tuple[str, List[str]]:
    """(screenshot path, console messages at error level) of ``page`` opened from disk, network off."""
    exe = browser()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install chromium)")
    png = png or os.path.join(os.path.dirname(os.path.abspath(page)), "report.png")
    with tempfile.TemporaryDirectory(prefix="edge-bench-chromium-") as profile:
        result = subprocess.run(
            [
                exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
                # Nothing may be fetched: any request to the network fails and shows as a console error.
                "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
                f"--window-size={width},{height}", f"--screenshot={png}", "file://" + os.path.abspath(page),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if re.search(r"CONSOLE|net::ERR_", line)]
    if result.returncode != 0 or not os.path.exists(png):
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-500:]}")
    return png, errors


if __name__ == "__main__":
    path, console = render(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    print(path)
    for line in console:
        print(line)
    sys.exit(1 if console else 0)
