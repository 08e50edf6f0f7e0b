"""Reading and writing JSON Lines so that every input line gets exactly one answer.

Shared by `sts generate`, `sts decode` and `sts fleet run`.  Whatever a line holds (bytes that
are not UTF-8, invalid JSON, a 5,000-digit number, nesting 100,000 deep, NaN), reading it either
gives a JSON value or raises InputError naming the line; writing never fails on such values.

A line's id is echoed as it was written (`echo_id`): a number keeps its digits (`1.50`, `1e400`,
`-0`, 4,300 digits), which reading it as a Python number would change.
"""

from __future__ import annotations

import json
import math
import re
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson

from sts.codec.describe import LongNumber
from sts.errors import InputError

_INT_DIGITS = 4000  # below Python's int <-> text limit (4,300)


def _parse_int(text: str) -> int | LongNumber:
    return int(text) if len(text) <= _INT_DIGITS else LongNumber(text)


def read_json_line(raw: str | bytes, number: int, *, exact: bool = False) -> Any:
    """The JSON value of one line, or InputError (field "line") saying why it is not JSON.

    The fast reader (orjson) turns integers beyond 64 bits into floats; callers read a line
    that `may_hold_long_int` again with `exact=True` to get the integer as written.
    """
    if not exact:
        try:
            return orjson.loads(raw)  # fast; refuses NaN and deep nesting
        except orjson.JSONDecodeError:
            pass
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"line {number} is not UTF-8 text (byte {exc.start + 1})",
                             field="line") from None
    try:
        return json.loads(raw, parse_int=_parse_int)  # big integers, NaN; names the problem
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}",
                         field="line") from None
    except RecursionError:
        raise InputError(f"line {number} is nested too deeply to be a request",
                         field="line") from None


# a JSON integer of 19+ digits (beyond 64 bits orjson reads it as a float) starts a value:
# after ':', ',' or '[' (or the line); a match inside a string only costs an exact re-read
_LONG_INT_TEXT = re.compile(r"(?:^|[:,\[])\s*-?[0-9]{19}")
_LONG_INT_BYTES = re.compile(rb"(?:^|[:,\[])\s*-?[0-9]{19}")


def may_hold_long_int(raw: str | bytes) -> bool:
    """True if the line may hold an integer that the fast reader turned into a float."""
    if isinstance(raw, bytes):
        return _LONG_INT_BYTES.search(raw) is not None
    return _LONG_INT_TEXT.search(raw) is not None


class IdText:
    """An id to echo by its JSON text, because its value would not be written back the same
    (`1.50` reads as 1.5, `1e400` as inf, `-0` as 0; 4,300 digits do not read at all)."""

    __slots__ = ("json",)

    def __init__(self, text: str) -> None:
        self.json = text

    def __repr__(self) -> str:
        return f"IdText({self.json!r})"


class _Number:
    """A number (or NaN, Infinity, -Infinity) as written, from the exact re-read of a line."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _id_json(value: Any) -> str:
    """The JSON text of an id read with its numbers as written (`_Number`).  NaN and the
    infinities, which strict JSON cannot hold, are written as strings of their names."""
    if isinstance(value, _Number):
        return value.text if value.text[-1:].isdigit() else encode_basestring_ascii(value.text)
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, list):
        return "[" + ",".join(_id_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{encode_basestring_ascii(k)}:{_id_json(v)}"
                              for k, v in value.items()) + "}"
    return "null" if value is None else "true" if value is True else "false"


def _minus_zero(raw: str | bytes) -> bool:
    return b"-0" in raw if isinstance(raw, bytes) else "-0" in raw


def echo_id(value: Any, raw: str | bytes) -> Any:
    """The id of a line read from `raw` as it is to be echoed: the value itself when writing
    it gives back its text, else an IdText with the text as written."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int and (value or not _minus_zero(raw)):
        return value  # an int is written back with its digits, but for -0
    try:
        obj = json.loads(raw, parse_int=_Number, parse_float=_Number, parse_constant=_Number)
        return IdText(_id_json(obj["id"]))
    except (ValueError, TypeError, KeyError, RecursionError):
        return value  # not re-readable as an object with an id (not met in practice)


_strict = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False).encode


def dump_line(obj: dict[str, Any]) -> str:
    """One output line of strict JSON, the id first when it is an IdText (written as is).
    Another id that JSON cannot hold (NaN) is quoted."""
    line_id = obj.get("id")
    if type(line_id) is IdText:
        rest = _dump({k: v for k, v in obj.items() if k != "id"})
        return f'{{"id":{line_id.json}' + ("," + rest[1:] if len(rest) > 2 else "}")
    return _dump(obj)


def _dump(obj: dict[str, Any]) -> str:
    try:
        return _strict(obj)
    except ValueError:
        return _strict(_finite(obj))


def _finite(value: Any) -> Any:
    """The value with NaN and infinities (which strict JSON cannot hold) written as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def is_blank(raw: str | bytes) -> bool:
    return not raw.strip()
