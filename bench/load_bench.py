"""The load test of tests/reliability/test_load.py, longer and bigger (not run by CI).

    .venv/bin/python -m bench.load_bench [--clients 200] [--seconds 120] [--layer-kib 256]
        [--db-uri postgresql://postgres@127.0.0.1:5432/moorage_load] [--out results.json]

Starts docker-registry and ``moorage serve`` on 127.0.0.1 (SQLite + filesystem in a temporary
folder unless ``--db-uri`` names an empty PostgreSQL database), then runs the same scenario:
``--clients`` clients pulling manifests and blobs (every digest verified) for ``--seconds``
while a mirror sync and a push run. Prints the summary (manifest GET p50/p95/p99/max, requests
per second, errors) as JSON; exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.reliability.test_load import run_load
from tests.support.server import run_docker_registry, run_moorage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--layer-kib", type=int, default=256, help="size unit of the layers")
    parser.add_argument("--db-uri", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="moorage-load-"))
    try:
        config: dict[str, Any] = {
            "DATA_DIR": scratch / "data",
            "INSECURE_OPEN_REGISTRY_NO_AUTH": False,
            "SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"],
            "REPO_MIRROR_INTERVAL": 1,
        }
        if args.db_uri:
            config["DB_URI"] = args.db_uri
        with (
            run_docker_registry(scratch / "upstream") as upstream,
            run_moorage(config, scratch / "moorage") as moorage,
        ):
            result = asyncio.run(
                run_load(
                    moorage,
                    upstream,
                    backend="postgres-fs" if args.db_uri else "sqlite-fs",
                    clients=args.clients,
                    seconds=args.seconds,
                    layer_kib=args.layer_kib,
                )
            )
        text = json.dumps(result.summary(), indent=2)
        print(text)
        if args.out:
            args.out.write_text(text)
        return 1 if result.errors else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
