"""Open report pages in a real browser (headless Chromium, 1280 px wide) and save what a reader sees: the first
screen, and optionally the whole page down to a given height.

    python bench/screenshots.py results/report/index.html --out docs/images/report-default.png
    python bench/screenshots.py experiments/tiny/results/report/index.html --out /tmp/tiny.png --height 4000

Chromium is a Debian package (`apt-get install chromium`); the page itself needs no network (its images are
embedded), so the browser runs with networking off. Exits with a message naming what is missing when the
browser or the page is not there.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1280
FIRST_SCREEN = 800  # the height a reader sees before scrolling on a laptop


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium) and rerun")


def screenshot(page: Path, out: Path, height: int = FIRST_SCREEN, width: int = WIDTH) -> Path:
    """One PNG of `page` as a window of width x height shows it."""
    page = page.resolve()
    if not page.is_file():
        raise SystemExit(f"no page at {page}: run the workflow first (its report writes results/report/index.html)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: nothing cached from another run
        cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
               f"--window-size={width},{height}", f"--screenshot={out.resolve()}", page.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"Chromium failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="a report's index.html")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--height", type=int, default=FIRST_SCREEN, help=f"window height (default {FIRST_SCREEN})")
    args = parser.parse_args(argv)
    print(screenshot(args.page, args.out, args.height))


if __name__ == "__main__":
    sys.exit(main())
