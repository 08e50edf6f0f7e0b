"""Shared test configuration: where the known-answer vectors live.

In CI (CI=true) a missing vectors directory is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# speed is measured by the benchmarks, never asserted: no property test fails because a busy
# machine ran one example slowly (hypothesis's default deadline is 200 ms an example)
settings.register_profile("sts", deadline=None, print_blob=True)
settings.load_profile("sts")

# the vending fixtures (database on SQLite and PostgreSQL, service, demo data, fake clock) for
# every test package: one plugin module, imported by nobody sideways
pytest_plugins = ("tests.fixtures",)

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


def load_vectors(*kinds: str) -> list[dict[str, Any]]:
    """Every line of every *.jsonl file in the vectors directory (optionally of some kinds).

    Extra directories in the same format can be added with STS_EXTRA_VECTORS (os.pathsep
    separated); they are run exactly like the shared ones.
    """
    import json

    dirs = [d for d in [vectors_dir()] if d is not None]
    extra = os.environ.get("STS_EXTRA_VECTORS", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    out: list[dict[str, Any]] = []
    for d in dirs:
        for path in sorted(d.glob("*.jsonl")):
            with path.open() as fh:
                for line in fh:
                    if line.strip():
                        v = json.loads(line)
                        if not kinds or v.get("kind") in kinds:
                            out.append(v)
    return out


def vector_params(*kinds: str) -> list[object]:
    """pytest params, one per vector, with the vector id as the test id."""
    vectors = load_vectors(*kinds)
    if not vectors:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no vectors available"))]
    return [pytest.param(v, id=str(v["id"])) for v in vectors]
