"""docs/screenshots/batch_report.png: the batch report of `lung-unet predict` on the shipped CC BY reference X-rays.

    python scripts/report_screenshot.py [--convention whole-lung]

Only napari_lung_unet/reference/images (covid_v7labs, CC BY; attribution.csv) are used. Needs the
Debian package chromium. The page is rendered by headless Chromium from disk, network off.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "napari_lung_unet" / "reference" / "images"
TARGET = ROOT / "docs" / "screenshots" / "batch_report.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--convention", default="whole-lung", help="the V7 Labs masks of these images are whole-lung")
    ap.add_argument("--size", default="1280,1500")
    args = ap.parse_args()
    browser = shutil.which("chromium") or sys.exit("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out, report = tmp / "out", tmp / "report"
        subprocess.run([sys.executable, "-m", "napari_lung_unet.cli", "predict", str(REFERENCE), "-o", str(out),
                        "--convention", args.convention, "--device", "cpu", "--report", str(report)], check=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'chromium'}",
                        "--hide-scrollbars", f"--window-size={args.size}", "--virtual-time-budget=5000",
                        f"--screenshot={TARGET}", (report / "index.html").as_uri()], check=True)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
