"""The one place where every exception becomes the API's error model `{code, message, field?}`.

Vending refusals (`sts.errors.VendingError`) already carry upper-case codes.  Engine errors keep
their own lower-case codes inside the engine and CLI; here they are mapped once onto the
vending codes, so a client matches on a single, stable vocabulary.
"""

from __future__ import annotations

from typing import Any

from sts import errors as e

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
    """HTTP status and body for any exception."""
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
