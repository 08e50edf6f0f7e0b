"""The one mapping from our stable error codes to the interface's ErrorType and HTTP status.

Every refusal the vending service can raise has exactly one ErrorType here; the short
`errorMessage` (at most 20 characters, the interface's limit) comes with it, and the full
message, our code and the field go into `detailMessage`.  Statuses follow the interface's
outcome classes: 400 only when nothing was issued and nothing moved; 500/504 when the outcome
may be unknown (the client then retries).
"""

from __future__ import annotations

from typing import Any

from sts import errors as e
from sts.electrum.models import ErrorDetail, ErrorType, RequestType
from sts.http.errors import api_error

# our error class -> (ErrorType, HTTP status, errorMessage); the first matching class wins
ERROR_MAP: tuple[tuple[type[BaseException], ErrorType, int, str], ...] = (
    (e.NotAuthenticated, ErrorType.INVALID_MERCHANT, 401, "Not authenticated"),
    (e.NotAuthorised, ErrorType.INVALID_MERCHANT, 400, "Not authorised"),
    (e.DuplicateRequest, ErrorType.DUPLICATE_RECORD, 400, "Duplicate id"),
    (e.AlreadyExists, ErrorType.DUPLICATE_RECORD, 400, "Duplicate id"),
    (e.UnknownMeter, ErrorType.UNKNOWN_METER_ID, 400, "Unknown meter"),
    (e.InvalidPan, ErrorType.UNKNOWN_METER_ID, 400, "Unknown meter"),
    (e.InvalidDrn, ErrorType.UNKNOWN_METER_ID, 400, "Unknown meter"),
    (e.InvalidMeterNumber, ErrorType.UNKNOWN_METER_ID, 400, "Unknown meter"),
    (e.MeterBlocked, ErrorType.METER_ID_BLOCKED, 400, "Meter blocked"),
    (e.AmountTooLow, ErrorType.AMOUNT_TOO_LOW, 400, "Amount too low"),
    (e.AmountTooHigh, ErrorType.AMOUNT_TOO_HIGH, 400, "Amount too high"),
    (e.AmountOutOfRange, ErrorType.AMOUNT_TOO_HIGH, 400, "Amount too high"),
    (e.InvalidAmount, ErrorType.INVALID_AMOUNT, 400, "Invalid amount"),
    (e.InsufficientFloat, ErrorType.INSUFFICIENT_FUNDS, 400, "Insufficient funds"),
    (e.KeyCreditLimit, ErrorType.LIMIT_EXCEEDED, 400, "Limit exceeded"),
    (e.RateLimited, ErrorType.LIMIT_EXCEEDED, 400, "Limit exceeded"),
    (e.NoFreeUnitsDue, ErrorType.NO_FREE_UNITS_DUE, 400, "No free units due"),
    (e.VendKeyExpired, ErrorType.METER_KEY_INVALID, 400, "Meter key invalid"),
    (e.NoKeyChangeDue, ErrorType.METER_KEY_INVALID, 400, "No key change due"),
    (e.KeyExpired, ErrorType.METER_KEY_INVALID, 400, "Meter key invalid"),
    (e.TidOutOfRange, ErrorType.METER_KEY_INVALID, 400, "Meter key invalid"),
    (e.DdtkError, ErrorType.METER_KEY_INVALID, 400, "Meter key invalid"),
    (e.KeyDataError, ErrorType.METER_KEY_INVALID, 400, "Meter key invalid"),
    (e.ReversalNotAllowed, ErrorType.TRANSACTION_NOT_SUPPORTED, 400, "Not reversible"),
    (e.AdviceConflict, ErrorType.TRANSACTION_NOT_SUPPORTED, 400, "Advice conflict"),
    # the purchase's id was named by a reversal advice that overtook it: never honoured
    (e.PurchaseReversed, ErrorType.DO_NOT_HONOR, 400, "Already reversed"),
    # mobile-money refusals (they do not arise on this face; mapped so none falls through)
    (e.PaymentRefused, ErrorType.INVALID_MERCHANT, 400, "Not authorised"),
    (e.PaymentMismatch, ErrorType.INVALID_AMOUNT, 400, "Payment mismatch"),
    (e.PaymentState, ErrorType.TRANSACTION_NOT_SUPPORTED, 400, "Payment state"),
    (e.ProviderError, ErrorType.UPSTREAM_UNAVAILABLE, 503, "Unavailable"),
    # back-office refusals (a top-up waiting for its second approver, a cashier's shift):
    # they do not arise on this face; mapped so none falls through
    (e.ApprovalNeeded, ErrorType.TRANSACTION_NOT_SUPPORTED, 400, "Approval needed"),
    (e.ShiftState, ErrorType.TRANSACTION_NOT_SUPPORTED, 400, "Shift state"),
    (e.RequestNotSupported, ErrorType.FUNCTION_NOT_SUPPORTED, 400, "Not supported"),
    (e.NotSupported, ErrorType.FUNCTION_NOT_SUPPORTED, 400, "Not supported"),
    (e.UnknownRecord, ErrorType.UNABLE_TO_LOCATE_RECORD, 404, "No record"),
    (e.OutcomeUnknown, ErrorType.OUTCOME_UNKNOWN, 504, "Outcome unknown"),
    (e.Unavailable, ErrorType.UPSTREAM_UNAVAILABLE, 503, "Unavailable"),
    (e.ConfigError, ErrorType.SYSTEM_MALFUNCTION, 500, "System malfunction"),
    (e.InputError, ErrorType.FORMAT_ERROR, 400, "Format error"),
    (e.TokenRejected, ErrorType.FORMAT_ERROR, 400, "Format error"),
    (e.VendingError, ErrorType.TRANSACTION_DECLINED, 400, "Declined"),
)

# operations that declare 404; elsewhere "no such record" is a 400 (e.g. a reprint reference)
DECLARES_404 = frozenset({
    RequestType.TOKEN_PURCHASE_RETRY_REQUEST, RequestType.CONFIRMATION_ADVICE,
    RequestType.REVERSAL_ADVICE, RequestType.NOTIFY_TOKEN_PURCHASE,
})
# operations after which a token may exist: an unexpected failure there is "outcome unknown"
ISSUING = frozenset({
    RequestType.TOKEN_PURCHASE_REQUEST, RequestType.TOKEN_PURCHASE_RETRY_REQUEST,
    RequestType.KEY_CHANGE_TOKEN_REQUEST,
})


class InterfaceError(Exception):
    """A refusal phrased directly in the interface's terms (format errors found by the face)."""

    def __init__(self, error_type: ErrorType, status: int, message: str, detail: Any) -> None:
        super().__init__(message)
        self.error_type, self.status, self.message, self.detail = (error_type, status, message,
                                                                   detail)


def format_error(field: str, rule: str) -> InterfaceError:
    return InterfaceError(ErrorType.FORMAT_ERROR, 400, "Format error",
                          {"code": "INVALID_INPUT", "field": field, "message": rule})


def classify(exc: BaseException, request_type: RequestType) -> tuple[int, ErrorType, str, Any]:
    """(HTTP status, ErrorType, errorMessage, detailMessage) for any exception."""
    if isinstance(exc, InterfaceError):
        return exc.status, exc.error_type, exc.message, exc.detail
    for cls, error_type, status, short in ERROR_MAP:
        if isinstance(exc, cls):
            assert isinstance(exc, e.StsError)
            if error_type is ErrorType.UNABLE_TO_LOCATE_RECORD and (
                    request_type not in DECLARES_404):
                status = 400
            if status == 503 and request_type is RequestType.TOKEN_PURCHASE_RETRY_REQUEST:
                # the original may still be running: say "unknown" so the client retries
                status, error_type, short = 504, ErrorType.OUTCOME_UNKNOWN, "Outcome unknown"
            # the detail is the /v1 error body: one vocabulary of codes for every face
            _status, detail = api_error(exc)
            return status, error_type, short, detail
    if request_type in ISSUING:
        return (500, ErrorType.OUTCOME_UNKNOWN, "Outcome unknown",
                {"code": "OUTCOME_UNKNOWN",
                 "message": "internal error: retry the request to learn its outcome"})
    return (500, ErrorType.GENERAL_ERROR, "General error",
            {"code": "SYSTEM_ERROR", "message": "internal error; the request was not applied"})


def error_detail(exc: BaseException, request_type: RequestType, message_id: str,
                 original_id: str | None = None) -> tuple[int, dict[str, Any]]:
    status, error_type, short, detail = classify(exc, request_type)
    body = ErrorDetail.model_validate({
        "errorType": error_type, "errorMessage": short[:20], "requestType": request_type,
        "id": message_id, "originalId": original_id, "detailMessage": detail})
    return status, body.dump()
