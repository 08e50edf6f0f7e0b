"""Shared steps of the interface's operations: the router, path/body id checks, the
originator check, meter numbers and currency, message ids, kept refusals, and answers that
are validated against the interface's models with the envelope echoed as received."""


from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sts.electrum.envelope import echo, echo_advice
from sts.electrum.errors import InterfaceError, classify, format_error
from sts.electrum.http import (
    OPERATIONS,
    PREFIX,
    InterfaceRoute,
    basic_of,
    raw_of,
    service_of,
)
from sts.electrum.models import (
    ErrorDetail,
    ErrorType,
    LedgerAmount,
    Meter,
)
from sts.errors import (
    DuplicateRequest,
    NotAuthorised,
    RequestNotSupported,
    StsError,
)
from sts.vending import messages, meters
from sts.vending.access.credentials import BasicCaller
from sts.vending.currency import Currency, check_currency, meter_currency
from sts.vending.ledger import check_request_id, request_hash
from sts.vending.service import VendingService

STATUS_TEXT = {400: "Bad request", 404: "Not found", 500: "Internal Server Error",
               501: "Not implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}
STALE_SECONDS = 120  # a purchase pending longer than this (twice a client's timeout) died


def responses_for(model: Any, success: int, errors: tuple[int, ...]) -> dict[int | str, Any]:
    out: dict[int | str, Any] = {}
    if model is not None:
        out[success] = {"model": model, "description": "Success"}
    for code in errors:
        out[code] = {"model": ErrorDetail, "description": STATUS_TEXT[code]}
    return out


E = (400, 500, 501, 503, 504)
E404 = (400, 404, 500, 501, 503, 504)
router = APIRouter(prefix=PREFIX, route_class=InterfaceRoute, tags=["prepaidutility v3"])


# --- shared steps ----------------------------------------------------------------------------


def same_id(path_value: str, body_value: str, field: str) -> None:
    """The path's id must be the body's; ids follow the service's rule (8-64 characters,
    letters, digits and ._:- : a UUID fits)."""
    check_request_id(path_value, field)
    if path_value != body_value:
        raise format_error(field, f"{field} {body_value!r} must equal the id in the path "
                                  f"({path_value!r})")


def check_originator(basic: BasicCaller, institution_id: str) -> None:
    if basic.institution_id is not None and institution_id != basic.institution_id:
        raise NotAuthorised(f"these credentials are issued to institution "
                            f"{basic.institution_id}, not {institution_id}",
                            field="originator.institution.id")


def meter_pan(meter: Meter) -> str:
    if not meter.meter_id:
        if meter.track2_data:
            raise RequestNotSupported("track 2 data is not accepted: send the meter number",
                                      field="meter.track2Data")
        raise format_error("meter.meterId", "meter.meterId must be the meter number")
    return meters.meter_pan(meter.meter_id, field="meter.meterId")


def open_request(request: Request, path_id: str, body: Any) -> tuple[VendingService,
                                                                      BasicCaller, str]:
    """The opening every meter request shares: path id against the body's, the originator
    against the credentials, the meter number.  Returns (service, caller, pan)."""
    same_id(path_id, body.id, "id")
    svc, basic = service_of(request), basic_of(request)
    check_originator(basic, body.originator.institution.id)
    return svc, basic, meter_pan(body.meter)


def currency_of(svc: VendingService, pan: str) -> Currency:
    with svc.db.read() as conn:
        return meter_currency(conn, pan)


def amount_of(amount: LedgerAmount, cur: Currency) -> Decimal:
    check_currency(cur, amount.currency, field="purchaseAmount.currency")
    return cur.to_major(amount.amount, field="purchaseAmount.amount")


def claim(request: Request, message_id: str, operation: str, rhash: str,
           ref_id: str | None = None) -> tuple[bool, messages.Message]:
    svc, basic, raw = service_of(request), basic_of(request), raw_of(request)
    inst = str(((raw.get("originator") or {}).get("institution") or {}).get("id", ""))
    return messages.claim(svc.db, message_id=message_id, operation=operation,
                          request_hash=rhash, request=raw, now=svc.now(), ref_id=ref_id,
                          institution_id=inst, credential_id=basic.credential_id)


def new_request(request: Request, message_id: str, operation: str, rhash: str) -> None:
    """Claim the id of a new request: an id already used is DUPLICATE_RECORD."""
    created, msg = claim(request, message_id, operation, rhash)
    if not created:
        raise DuplicateRequest(f"id {message_id} was already used (by a {msg.operation} "
                               "request); a new request needs a new id", field="id")


def record_refusal(svc: VendingService, message_id: str, request_type: Any, exc: BaseException) -> None:
    """Keep a final refusal with its id, so a repeat gets the same answer.  Refusals that
    depend on who asks (another vendor's retry, a role) say nothing about the request itself
    and are not kept."""
    if isinstance(exc, DuplicateRequest | NotAuthorised):
        return
    status, error_type, short, detail = classify(exc, request_type)
    if status < 500 and status != 404:
        messages.finish(svc.db, message_id, status="failed", now=svc.now(), http_status=status,
                        error_type=error_type.value,
                        outcome={"errorMessage": short, "detailMessage": detail})


def stored_failure(msg: messages.Message) -> InterfaceError:
    out = msg.outcome or {}
    return InterfaceError(ErrorType(msg.error_type or "GENERAL_ERROR"), msg.http_status or 400,
                          str(out.get("errorMessage", "Declined")), out.get("detailMessage"))


def answer(model: Any, raw: dict[str, Any], body: dict[str, Any], status: int,
            reference: str | None) -> JSONResponse:
    """Validate our answer against the interface's model, then echo the envelope as received."""
    env = echo(raw, reference)
    out = model.model_validate(env | body).dump() | env
    return JSONResponse(out, status_code=status)


def advice_answer(raw: dict[str, Any], status: int = 202) -> JSONResponse:
    return JSONResponse(echo_advice(raw), status_code=status)


def claim_advice(request: Request, advice_id: str, operation: str, ref_id: str) -> bool:
    """Claim an advice id; True when this advice was already accepted (a repeat)."""
    rhash = request_hash({"operation": operation, "requestId": ref_id})
    created, msg = claim(request, advice_id, operation, rhash, ref_id=ref_id)
    if created:
        return False
    if msg.operation != operation or msg.ref_id != ref_id:
        raise DuplicateRequest(f"id {advice_id} was already used (by a {msg.operation})",
                               field="id")
    if msg.status == "failed":
        raise stored_failure(msg)
    return msg.status == "done"


def advice_done(request: Request, advice_id: str, outcome: dict[str, Any]) -> None:
    svc = service_of(request)
    messages.finish(svc.db, advice_id, status="done", now=svc.now(), http_status=202,
                    outcome=outcome)


def run_advice(request: Request, advice_id: str, kind: str, original_id: str, body: Any,
               operation_id: str, work: Callable[[], dict[str, Any]]) -> JSONResponse:
    """The frame every advice shares: ids checked against the body, a repeat answered as the
    first was, `work` run (its final refusal kept with the advice id), its outcome stored."""
    same_id(advice_id, body.id, "id")
    same_id(original_id, body.request_id, "requestId")
    if claim_advice(request, advice_id, kind, original_id):
        return advice_answer(raw_of(request))
    svc = service_of(request)
    try:
        outcome = work()
    except StsError as exc:
        record_refusal(svc, advice_id, OPERATIONS[operation_id][0], exc)
        raise
    advice_done(request, advice_id, outcome)
    return advice_answer(raw_of(request))
