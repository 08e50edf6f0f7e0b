"""The one place where every exception becomes the API's error model `{code, message, field?}`.

Vending refusals (`sts.errors.VendingError`) already carry upper-case codes.  Engine errors keep
their own lower-case codes inside the engine and CLI; here they are mapped once onto the
vending codes, so a client matches on a single, stable vocabulary.  Errors the framework
raises before a request reaches the service (unknown route, wrong method, a body that is not
JSON, too large, or of the wrong shape) take the same form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sts import errors as e
from sts.codec.amount import parse_amount_text
from sts.codec.pan import parse_meter_number
from sts.vending import observe, text

# engine error class -> (API code, HTTP status); the first matching class wins (most specific first)
ENGINE_MAP: tuple[tuple[type[e.StsError], str, int], ...] = (
    (e.TidOutOfRange, "KEY_EXPIRED", 409),
    (e.AmountOutOfRange, "AMOUNT_TOO_HIGH", 422),
    (e.InvalidAmount, "INVALID_AMOUNT", 422),
    (e.InvalidMeterNumber, "INVALID_METER_NUMBER", 422),
    (e.InvalidPan, "INVALID_METER_NUMBER", 422),
    (e.InvalidDrn, "INVALID_METER_NUMBER", 422),
    (e.TokenFormatError, "INVALID_TOKEN", 422),
    (e.KeyDataError, "INVALID_KEY", 422),
    (e.InputError, "INVALID_INPUT", 422),
    (e.KeyExpired, "KEY_EXPIRED", 409),
    (e.DdtkError, "METER_KEY_INVALID", 409),
    (e.TokenRejected, "TOKEN_REJECTED", 422),
    (e.NotSupported, "FUNCTION_NOT_SUPPORTED", 422),
    (e.ConfigError, "SYSTEM_ERROR", 500),
)


def api_error(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """HTTP status and body for any exception (its code noted for the request's log line)."""
    status, body = _api_error(exc)
    observe.note_error(body["code"])
    return status, body


def _api_error(exc: BaseException) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, e.VendingError):
        return exc.http_status, exc.as_dict()
    if isinstance(exc, e.StsError):
        for cls, code, status in ENGINE_MAP:
            if isinstance(exc, cls):
                body: dict[str, Any] = {"code": code, "message": exc.message}
                if isinstance(exc, e.TokenRejected):
                    body["reason"] = exc.code
                if exc.field is not None:
                    body["field"] = exc.field
                if status >= 500:
                    body["message"] = "the server is misconfigured; see its log"
                return status, body
        return exc.http_status, {"code": "GENERAL_ERROR", "message": exc.message}
    return 500, {"code": "SYSTEM_ERROR", "message": "internal error; the request was not applied"}


# --- request-level errors (before the service sees the request) ---------------------------

# HTTP statuses the framework answers itself -> the API code for each
HTTP_CODES: dict[int, str] = {
    400: "INVALID_INPUT",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def body_too_large(limit: int) -> dict[str, Any]:
    return {"code": "BODY_TOO_LARGE",
            "message": f"the request body is larger than the limit of {limit} bytes",
            "field": "body"}


def body_not_utf8() -> dict[str, Any]:
    return {"code": "INVALID_INPUT", "message": "the body must be JSON encoded as UTF-8",
            "field": "body"}


def http_error(status: int, detail: object, cause: BaseException | None,
               method: str, path: str) -> dict[str, Any]:
    """The body for an error the framework raised (unknown route, wrong method, bad body)."""
    if status == 404:
        return {"code": "NOT_FOUND", "message": f"no such endpoint: {method} {path[:200]}"}
    if status == 405:
        return {"code": "METHOD_NOT_ALLOWED",
                "message": f"{method} is not allowed on {path[:200]}"}
    if status == 400:  # the body could not be read as JSON at all
        if isinstance(cause, UnicodeDecodeError):
            return body_not_utf8()
        if isinstance(cause, RecursionError):
            message = "the body's JSON is nested too deeply"
        elif isinstance(cause, ValueError):
            message = f"the body is not valid JSON: {str(cause)[:200]}"
        else:
            message = "the body could not be read as JSON"
        return {"code": "INVALID_INPUT", "message": message, "field": "body"}
    code = HTTP_CODES.get(status, "INVALID_INPUT" if status < 500 else "SYSTEM_ERROR")
    message = detail if isinstance(detail, str) else f"HTTP {status}"
    return {"code": code, "message": message[:300]}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) if parts else "body"


def _message(err: dict[str, Any], field: str) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "json_invalid":
        return f"the body is not valid JSON: {str(ctx.get('error', ''))[:200]}".rstrip(": ")
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"{field} is not a field of this request"
    if kind in ("string_too_long", "too_long"):  # too_long: a string type with a check
        return f"{field} must be at most {ctx.get('max_length')} characters"
    if kind == "control_character":
        return text.rule_text(field, str(ctx.get("char", "")))
    if kind == "string_unicode":  # JSON "\ud800": a lone surrogate, never storable text
        return text.rule_text(field, "a lone surrogate")
    if kind == "string_type":
        return f"{field} must be a JSON string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be a JSON integer"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field} must be true or false"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if field == "body":
            return "the body must be a JSON object (Content-Type: application/json)"
        return f"{field} must be a JSON object"
    return f"{field}: {str(err.get('msg', 'invalid value'))[:200]}"


def _amount_rule(value: object, *, field: str) -> object:
    return parse_amount_text(value, field=field)


# fields with one rule of their own (sts.codec): a wrong type or length there is answered by
# that rule, so a client sees one code per field (INVALID_AMOUNT, INVALID_METER_NUMBER)
FIELD_RULES: dict[str, Callable[..., object]] = {
    "amount": _amount_rule,
    "meter": parse_meter_number,
}


def _by_rule(field: str, err: dict[str, Any]) -> dict[str, Any] | None:
    rule = FIELD_RULES.get(field)
    if rule is None or "input" not in err or err.get("type") in ("missing", "extra_forbidden"):
        return None
    try:
        rule(err["input"], field=field)
    except e.StsError as exc:
        return api_error(exc)[1]
    return None


def validation_error(errors: Sequence[Any]) -> dict[str, Any]:
    """The first request validation error (pydantic/FastAPI) in the one error shape."""
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    field = _field(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        field = "body"
    by_rule = _by_rule(field, first)
    if by_rule is not None:
        return by_rule
    return {"code": "INVALID_INPUT", "message": _message(first, field), "field": field}
