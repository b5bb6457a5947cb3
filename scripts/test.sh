#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks and the whole test suite.
# The suite runs every functional test on SQLite + filesystem and on PostgreSQL + S3 (moto).
# PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth); without it that half is
# skipped with a message, except under CI=true where it is required.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1 && [ "${MOORAGE_SKIP_APT:-0}" != "1" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3-venv skopeo podman docker-registry apache2-utils uidmap chromium >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Two test processes by default (the CI machine has 2 cores); MOORAGE_TEST_WORKERS=0 runs in one.
.venv/bin/pytest -q -n "${MOORAGE_TEST_WORKERS:-2}" --durations=25 "$@"
