"""Batch jobs in the JSON Lines vocabulary: one input object in, one output object out.

A bad line becomes `{"id", "error": <stable code>, "message", "field"?, "line"}` so a
campaign of 100,000 lines goes on past it.  The error shape is the same for every error,
including `internal` (a bug of ours, reported on the line that met it).
"""

from __future__ import annotations

from typing import Any

from sts.codec.describe import describe
from sts.engine.core import decode, generate
from sts.engine.lines import read_json_line
from sts.engine.wire import decoded_to_json, issue_to_json, meter_from_json, request_from_json
from sts.errors import InputError, StsError, TokenFormatError


def error_line(line_id: Any, exc: StsError, number: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": line_id, "error": exc.code, "message": exc.message}
    if exc.field:
        out["field"] = exc.field
    if number is not None:
        out["line"] = number
    return out


def internal_line(line_id: Any, exc: BaseException, number: int | None = None) -> dict[str, Any]:
    """The answer for a line that met a bug of ours: the run goes on with the next line."""
    out: dict[str, Any] = {"id": line_id, "error": "internal",
                           "message": f"internal error ({type(exc).__name__}); please report "
                           "this line"}
    if number is not None:
        out["line"] = number
    return out


def parse_line(text: str | bytes, number: int, *, exact: bool = False
               ) -> tuple[Any, dict[str, Any]]:
    obj = read_json_line(text, number, exact=exact)
    if not isinstance(obj, dict):
        raise InputError(f"line {number} must be a JSON object, got {describe(obj)}",
                         field="line")
    return obj.get("id"), obj


def _meter(obj: dict[str, Any], tables_file: str | None) -> Any:
    meter_obj = obj.get("meter")
    return meter_from_json(meter_obj, tables_file=tables_file) if meter_obj is not None else None


def generate_obj(obj: dict[str, Any], tables_file: str | None) -> dict[str, Any]:
    meter = _meter(obj, tables_file)
    if "request" not in obj:
        raise InputError("request is required", field="request")
    request = request_from_json(obj["request"], meter, tables_file=tables_file)
    return issue_to_json(generate(meter, request))


def decode_obj(obj: dict[str, Any], tables_file: str | None) -> dict[str, Any]:
    if "token" not in obj:
        raise InputError("token is required", field="token")
    token = obj["token"]
    if not isinstance(token, str):
        raise TokenFormatError(
            f"token must be a string of 20 digits (quote it: JSON numbers lose digits), got "
            f"{describe(token)}",
            field="token",
        )
    return decoded_to_json(decode(token, _meter(obj, tables_file)))
