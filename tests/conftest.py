"""Shared test configuration: where the known-answer vectors live.

In CI (CI=true) a missing vectors directory is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = Path(os.environ.get("STS_VECTORS_DIR", ROOT.parent / "shared" / "vectors"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def vectors_dir() -> Path | None:
    if VECTORS_DIR.is_dir():
        return VECTORS_DIR
    if IN_CI:
        raise RuntimeError(f"CI run without the shared vectors at {VECTORS_DIR}")
    return None


def sta_tables_file() -> str | None:
    d = vectors_dir()
    if d is None:
        return None
    path = d / "sta-tables.json"
    return str(path) if path.is_file() else None


@pytest.fixture(scope="session")
def tables_file() -> str:
    path = sta_tables_file()
    if path is None:
        pytest.skip("shared/vectors/sta-tables.json not available (outside CI)")
    return path
