#!/usr/bin/env python3
"""Regenerate docs/screenshots/*.png of the web UI (shown in README.md).

Runs the browser tests in tests/ui (real `moorage serve`, docker-registry upstream, Debian's
Chromium through Playwright) with MOORAGE_UI_SCREENSHOTS pointing at docs/screenshots, so the
pictures always show a UI that passes its tests. Needs what those tests need: chromium, skopeo,
docker-registry and the `test` extra installed in .venv.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = ROOT / "docs" / "screenshots"
    env = {**os.environ, "MOORAGE_UI_SCREENSHOTS": str(target)}
    command = [sys.executable, "-m", "pytest", "tests/ui", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)  # noqa: S603
    if result.returncode == 0:
        for path in sorted(target.glob("*.png")):
            print(path.relative_to(ROOT))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
