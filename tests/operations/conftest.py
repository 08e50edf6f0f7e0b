"""Fixtures of the operations tests (the vending fixtures come from tests/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_db_url(db_url: str) -> str:
    """`db_url` without any schema (the SQLite fixture is a copy of a migrated template; the
    PostgreSQL one is emptied already): for tests that migrate step by step themselves."""
    if "://" not in db_url:
        Path(db_url).unlink(missing_ok=True)
    return db_url
