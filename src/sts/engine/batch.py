"""Batch runner for `sts generate` / `sts decode`: text lines in, JSON text lines out, in order.

Lines are read in chunks; the vectorised fast path (`sts.engine.fast`) takes the plainly
well-formed common lines, the generic path (`sts.engine.jobs`) everything else, including
every error.  Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from sts.crypto.sta import TableSet
from sts.engine.jobs import decode_obj, error_line, generate_obj, parse_line
from sts.errors import StsError

CHUNK = 4096
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def run_batch(
    lines: Iterable[str], job: str, tables_file: str | None, *, fast: bool = True
) -> Iterator[tuple[str, bool]]:
    """(JSON text, ok) per non-blank input line."""
    from sts.engine import fast as fastpath

    work = generate_obj if job == "generate" else decode_obj
    fast_chunk = fastpath.generate_chunk if job == "generate" else fastpath.decode_chunk
    tables: dict[str, TableSet] = {}
    numbered = enumerate(lines, 1)
    while True:
        chunk = list(islice(numbered, CHUNK))
        if not chunk:
            return
        parsed: list[Any] = []
        candidates: list[tuple[int, dict[str, Any]]] = []
        for number, text in chunk:
            if not text.strip():
                parsed.append(None)
                continue
            try:
                _, obj = parse_line(text, number)
            except StsError as exc:
                parsed.append(exc)
                continue
            candidates.append((len(parsed), obj))
            parsed.append(obj)
        done = fast_chunk(candidates, tables_file, tables) if fast and candidates else {}
        for pos, item in enumerate(parsed):
            if item is None:
                continue
            if isinstance(item, StsError):
                yield _encode(error_line(None, item)), False
                continue
            ready = done.get(pos)
            if ready is not None:
                yield ready, True
                continue
            try:
                result = work(item, tables_file)
            except StsError as exc:
                yield _encode(error_line(item.get("id"), exc)), False
                continue
            yield _encode({"id": item.get("id"), **result}), True
