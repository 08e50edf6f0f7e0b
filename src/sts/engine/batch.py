"""Batch runner: lines in, (result, ok) out, in input order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sts.engine.jobs import run_lines


def run_batch(
    lines: Iterable[str], job: str, tables_file: str | None
) -> Iterator[tuple[dict[str, Any], bool]]:
    yield from run_lines(lines, job, tables_file)
