"""Batch runner for `sts generate` / `sts decode`: lines in, JSON text lines out, in order.

One output line per non-blank input line, whatever the line holds.  Lines are read in chunks;
the vectorised fast path (`sts.engine.fast`) takes the plainly well-formed common lines, the
generic path (`sts.engine.jobs`) everything else, including every error.  A bug met on one line
(any exception that is not one of ours) answers that line with `"error": "internal"`; a bug in
the fast path sends its chunk down the generic path.  The run always goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from itertools import islice
from typing import Any

from sts.crypto.sta import TableSet
from sts.engine.jobs import decode_obj, error_line, generate_obj, internal_line, parse_line
from sts.engine.lines import dump_line, echo_id, is_blank, may_hold_long_int
from sts.errors import StsError

CHUNK = 4096
_PLAIN_IDS = (str, int, type(None))  # ids the fast path echoes as is (after `_read`)


def run_batch(
    lines: Iterable[str | bytes], job: str, tables_file: str | None, *, fast: bool = True
) -> Iterator[tuple[str, bool]]:
    """(JSON text, ok) per non-blank input line."""
    return run_numbered(enumerate(lines, 1), job, tables_file, fast=fast)


def run_numbered(
    numbered: Iterable[tuple[int, str | bytes]], job: str, tables_file: str | None, *,
    fast: bool = True
) -> Iterator[tuple[str, bool]]:
    """(JSON text, ok) per non-blank line of (line number, text) pairs: the lines the compiled
    line engine hands back keep their numbers in the file (`sts.engine.stream`)."""
    work = generate_obj if job == "generate" else decode_obj
    tables: dict[str, TableSet] = {}
    numbered = iter(numbered)
    while True:
        chunk = list(islice(numbered, CHUNK))
        if not chunk:
            return
        # per line: (number, the object, or the answer already known when it is no object)
        parsed: list[tuple[int, str | bytes, dict[str, Any] | None, str | None]] = []
        candidates: list[tuple[int, dict[str, Any]]] = []
        for number, text in chunk:
            if is_blank(text):
                continue
            try:
                obj = _read(text, number)
            except StsError as exc:
                parsed.append((number, text, None, dump_line(error_line(None, exc, number))))
                continue
            except Exception as exc:  # a bug in the reader must not lose the run
                parsed.append((number, text, None,
                               dump_line(internal_line(None, exc, number))))
                continue
            if type(obj.get("id")) in _PLAIN_IDS:
                candidates.append((len(parsed), obj))
            parsed.append((number, text, obj, None))
        done: dict[int, str] = {}
        if fast and candidates:
            from sts.engine import fast as fastpath  # numpy: only when there is work for it

            fast_chunk = fastpath.generate_chunk if job == "generate" else fastpath.decode_chunk
            try:
                done = fast_chunk(candidates, tables_file, tables)
            except Exception:  # a bug in the fast path: the generic path answers every line
                done = {}
        for pos, (number, text, item, known) in enumerate(parsed):
            if item is None:
                assert known is not None
                yield known, False
                continue
            ready = done.get(pos)
            if ready is not None:
                yield ready, True
                continue
            reply = _answer(work, item, tables_file, number)
            if (not reply[1] or type(item.get("id")) not in _PLAIN_IDS) and may_hold_long_int(text):
                # the fast reader reads integers beyond 64 bits as floats: answer from the line
                # as written (only failed lines and echoed ids can depend on it)
                with suppress(Exception):
                    item = _read(text, number, exact=True)
                    reply = _answer(work, item, tables_file, number)
            yield reply


def _read(text: str | bytes, number: int, *, exact: bool = False) -> dict[str, Any]:
    """The line's object, its id as it is to be echoed (`echo_id`: numbers as written)."""
    line_id, obj = parse_line(text, number, exact=exact)
    echoed = echo_id(line_id, text)
    if echoed is not line_id:
        obj = {**obj, "id": echoed}
    return obj


def _answer(work: Callable[[dict[str, Any], str | None], dict[str, Any]], item: dict[str, Any],
            tables_file: str | None, number: int) -> tuple[str, bool]:
    """One line's answer: its result, its error, or `internal` for a bug of ours."""
    line_id = item.get("id")
    try:
        result = work(item, tables_file)
    except StsError as exc:
        out = error_line(line_id, exc, number)
        expected = item.get("expected")
        if isinstance(expected, dict) and expected.get("error") == exc.code:
            out["expected_error"] = True  # a vector line that states this very error
        return dump_line(out), False
    except Exception as exc:  # a bug of ours on this line must not lose the others
        return dump_line(internal_line(line_id, exc, number)), False
    return dump_line({"id": line_id, **result}), True
