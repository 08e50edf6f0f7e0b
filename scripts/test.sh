#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (vectors, properties, database on SQLite and
# PostgreSQL).  Under CI=true a missing ../shared/vectors or PostgreSQL is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; uv run --frozen --no-sync ruff check src tests benchmarks
echo "== mypy"; uv run --frozen --no-sync mypy
echo "== pytest"
exec uv run --frozen --no-sync pytest -n 2 "$@"
