"""Helpers the benchmarks share (imported as `_common`: each benchmark's own directory is on
sys.path, whether run as a script or through run.py)."""

from __future__ import annotations

import sys


def pg_fresh(url: str, *, report: bool = False) -> str | None:
    """Drop and re-create the database `url` names; `url`, or None when PostgreSQL is
    unreachable (a benchmark then skips it, saying why on stderr when `report`)."""
    import sqlalchemy as sa

    base, _, name = url.rpartition("/")
    try:
        eng = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        eng.dispose()
    except Exception as exc:  # a benchmark reports and moves on
        if report:
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return None
    return url
