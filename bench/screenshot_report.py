"""Render an eval report (report.html) in headless Chromium and save a PNG screenshot.

    python bench/screenshot_report.py runs/eval/report.html --output runs/eval/report.png

Needs Debian's ``chromium`` (apt-get install -y chromium) or Chrome on PATH. The screenshot shows what a
browser shows: tables, best values marked, problem notes and the PNG bar plots loaded from plots/.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found; install it with: apt-get install -y chromium")


def screenshot(report: Path, output: Path, width: int, height: int, timeout: float = 120) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no first-run state, no lock files
        command = [
            find_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={output.resolve()}",
            "--virtual-time-budget=5000",  # let the plot images load before the capture
            report.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not output.is_file():
        sys.exit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html written by `polyglot-llama eval`")
    parser.add_argument("--output", type=Path, help="PNG to write (default: report.png next to the report)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=3000, help="viewport height: the part of the page captured")
    args = parser.parse_args()
    if not args.report.is_file():
        sys.exit(f"{args.report}: not found; run `polyglot-llama eval ... --output DIR` first")
    path = screenshot(args.report, args.output or args.report.with_name("report.png"), args.width, args.height)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
