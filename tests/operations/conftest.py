"""Fixtures of the operations tests (the vending fixtures come from tests/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_db_url(db_url: str) -> str:
    """`db_url` without any schema (both fixtures are copies of a migrated template): for tests
    that migrate step by step themselves."""
    if "://" not in db_url:
        Path(db_url).unlink(missing_ok=True)
        return db_url
    import sqlalchemy as sa

    eng = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    eng.dispose()
    return db_url
