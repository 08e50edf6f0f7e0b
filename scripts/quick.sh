#!/usr/bin/env bash
# The quick loop while working: lint, types, import layers, then every test that needs neither
# PostgreSQL, nor a browser, nor minutes (crash loops, concurrency): SQLite and in-process
# service tests.  `./run test` still runs everything; CI runs `./run test`.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; uv run --frozen --no-sync ruff check src tests benchmarks setup.py
echo "== mypy"; uv run --frozen --no-sync mypy
echo "== import layers"; uv run --frozen --no-sync lint-imports
echo "== pytest (not slow, not postgres, not browser)"
exec uv run --frozen --no-sync pytest -n 2 -q -m "not slow and not postgres and not browser" "$@"
