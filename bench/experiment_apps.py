"""ASGI app factories for ``--experimental-server`` runs (see bench/servers.py).

Each does what ``moorage serve`` does before starting uvicorn (load settings from
$MOORAGE_CONFIG, migrate the database), optionally with an experimental patch applied, so
that a proposed change can be measured before anyone edits Moorage itself.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from moorage.app import create_app
from moorage.config import load_settings
from moorage.db.migrate import upgrade_sync


def app() -> Any:
    """Moorage's app, unchanged (for running it under another ASGI server)."""
    settings = load_settings(Path(os.environ["MOORAGE_CONFIG"]))
    # uvicorn calls factories inside its running event loop, where asyncio.run() is refused.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade_sync, settings.database_url).result()
    return create_app(settings)


def switch_interval_app() -> Any:
    """Moorage's app with the GIL switch interval at 1 ms instead of 5 ms.

    Every storage and SQLite call hops to a worker thread and back; while the event loop
    runs Python code, a thread that wants the GIL waits up to the switch interval.
    """
    sys.setswitchinterval(0.001)
    return app()
