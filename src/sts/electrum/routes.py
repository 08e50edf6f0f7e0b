"""The operations of Electrum's Prepaid Utility Service Interface v3 (/prepaidutility/v3), each
a translation onto the vending service (digest §2).  No business rule lives here: sales,
free units, reversals, confirmations, key change tokens and fault reports are the service's and
its modules'; this face checks the interface's own rules (path ids, currency, message ids),
converts, and echoes the envelope.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sts.electrum import convert
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
    BasicAdvice,
    BasicAdviceResponse,
    ConfirmationAdvice,
    ErrorDetail,
    ErrorType,
    FaultReportRequest,
    FaultReportResponse,
    KeyChangeConfirmation,
    KeyChangeTokenRequest,
    KeyChangeTokenResponse,
    LedgerAmount,
    Meter,
    MeterLookupRequest,
    MeterLookupResponse,
    PurchaseRequest,
    PurchaseResponse,
    ReversalAdvice,
    TokenReprintRequest,
    fault_constant,
)
from sts.errors import (
    DuplicateRequest,
    MeterBlocked,
    NoFreeUnitsDue,
    NotAuthorised,
    OutcomeUnknown,
    RequestNotSupported,
    StsError,
    UnknownRecord,
)
from sts.vending import advices, faults, free_units, key_change_tokens, messages
from sts.vending.credentials import BasicCaller
from sts.vending.currency import Currency, check_currency, meter_currency
from sts.vending.meter_numbers import pan_from_number
from sts.vending.service import VendingService, check_request_id, request_hash

STATUS_TEXT = {400: "Bad request", 404: "Not found", 500: "Internal Server Error",
               501: "Not implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}
STALE_SECONDS = 120  # a purchase pending longer than this (twice a client's timeout) died


def _responses(model: Any, success: int, errors: tuple[int, ...]) -> dict[int | str, Any]:
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


def _same(path_value: str, body_value: str, field: str) -> None:
    """The path's id must be the body's; ids follow the service's rule (8-64 characters,
    letters, digits and ._:- : a UUID fits)."""
    check_request_id(path_value, field)
    if path_value != body_value:
        raise format_error(field, f"{field} {body_value!r} must equal the id in the path "
                                  f"({path_value!r})")


def _originator(basic: BasicCaller, institution_id: str) -> None:
    if basic.institution_id is not None and institution_id != basic.institution_id:
        raise NotAuthorised(f"these credentials are issued to institution "
                            f"{basic.institution_id}, not {institution_id}",
                            field="originator.institution.id")


def _pan(meter: Meter) -> str:
    if not meter.meter_id:
        if meter.track2_data:
            raise RequestNotSupported("track 2 data is not accepted: send the meter number",
                                      field="meter.track2Data")
        raise format_error("meter.meterId", "meter.meterId must be the meter number")
    return pan_from_number(meter.meter_id, field="meter.meterId")


def _currency(svc: VendingService, pan: str) -> Currency:
    with svc.db.read() as conn:
        return meter_currency(conn, pan)


def _amount(amount: LedgerAmount, cur: Currency) -> Decimal:
    check_currency(cur, amount.currency, field="purchaseAmount.currency")
    return cur.to_major(amount.amount, field="purchaseAmount.amount")


def _claim(request: Request, message_id: str, operation: str, rhash: str,
           ref_id: str | None = None) -> tuple[bool, messages.Message]:
    svc, basic, raw = service_of(request), basic_of(request), raw_of(request)
    inst = str(((raw.get("originator") or {}).get("institution") or {}).get("id", ""))
    return messages.claim(svc.db, message_id=message_id, operation=operation,
                          request_hash=rhash, request=raw, now=svc.now(), ref_id=ref_id,
                          institution_id=inst, credential_id=basic.credential_id)


def _new_request(request: Request, message_id: str, operation: str, rhash: str) -> None:
    """Claim the id of a new request: an id already used is DUPLICATE_RECORD."""
    created, msg = _claim(request, message_id, operation, rhash)
    if not created:
        raise DuplicateRequest(f"id {message_id} was already used (by a {msg.operation} "
                               "request); a new request needs a new id", field="id")


def _record(svc: VendingService, message_id: str, request_type: Any, exc: BaseException) -> None:
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


def _stored_failure(msg: messages.Message) -> InterfaceError:
    out = msg.outcome or {}
    return InterfaceError(ErrorType(msg.error_type or "GENERAL_ERROR"), msg.http_status or 400,
                          str(out.get("errorMessage", "Declined")), out.get("detailMessage"))


def _answer(model: Any, raw: dict[str, Any], body: dict[str, Any], status: int,
            reference: str | None) -> JSONResponse:
    """Validate our answer against the interface's model, then echo the envelope as received."""
    env = echo(raw, reference)
    out = model.model_validate(env | body).dump() | env
    return JSONResponse(out, status_code=status)


def _advice_answer(raw: dict[str, Any], status: int = 202) -> JSONResponse:
    return JSONResponse(echo_advice(raw), status_code=status)


# --- purchases -------------------------------------------------------------------------------


def _sell(request: Request, purchase_id: str, pan: str, amount: Decimal) -> dict[str, Any]:
    """The sale (or the stored sale) for an id; a final refusal is kept with the id."""
    svc, basic = service_of(request), basic_of(request)
    try:
        if amount == 0:
            sale, _ = free_units.claim(svc, purchase_id, pan, basic.caller)
        else:
            sale, _ = svc.purchase(purchase_id, {"meter": pan, "amount": str(amount)},
                                   basic.caller)
    except StsError as exc:
        _record(svc, purchase_id, OPERATIONS["createTokenPurchaseRequest"][0], exc)
        raise
    messages.finish(svc.db, purchase_id, status="done", now=svc.now(), http_status=201,
                    outcome={"receipt_no": sale["receipt"]["receipt_no"]})
    return sale


def _purchase_reply(request: Request, body: PurchaseRequest, sale: dict[str, Any],
                    cur: Currency, status: int) -> JSONResponse:
    out = convert.purchase_body(sale, body.meter.meter_id, cur, utility_type=body.utility_type)
    return _answer(PurchaseResponse, raw_of(request), out, status,
                   sale["receipt"].get("receipt_no") or None)


def _purchase_inputs(request: Request, body: PurchaseRequest) -> tuple[str, Currency, Decimal,
                                                                       str]:
    _originator(basic_of(request), body.originator.institution.id)
    if body.payment_methods:
        raise RequestNotSupported("third-party payment collection (paymentMethods) is not "
                                  "offered: collect payment at the POS and send tenders",
                                  field="paymentMethods")
    pan = _pan(body.meter)
    cur = _currency(service_of(request), pan)
    amount = _amount(body.purchase_amount, cur)
    rhash = request_hash({"meter": pan, "amount": body.purchase_amount.amount,
                          "currency": body.purchase_amount.currency})
    return pan, cur, amount, rhash


@router.post("/tokenPurchases/{purchaseId}", status_code=201,
             operation_id="createTokenPurchaseRequest", response_model=None,
             summary="Token purchase", responses=_responses(PurchaseResponse, 201, E))
def create_token_purchase(purchaseId: str, body: PurchaseRequest, request: Request) -> Response:
    _same(purchaseId, body.id, "id")
    pan, cur, amount, rhash = _purchase_inputs(request, body)
    _new_request(request, purchaseId, "purchase", rhash)
    sale = _sell(request, purchaseId, pan, amount)
    return _purchase_reply(request, body, sale, cur, 201)


@router.post("/tokenPurchases/{purchaseId}/retry", status_code=202,
             operation_id="retryPurchaseRequest", response_model=None,
             summary="Retry a purchase: the original answer",
             responses=_responses(PurchaseResponse, 202, E404))
def retry_token_purchase(purchaseId: str, body: PurchaseRequest, request: Request) -> Response:
    check_request_id(purchaseId, "purchaseId")
    pan, cur, amount, rhash = _purchase_inputs(request, body)
    created, msg = _claim(request, purchaseId, "purchase", rhash)
    if not created:
        if msg.operation != "purchase":
            raise DuplicateRequest(f"id {purchaseId} belongs to a {msg.operation} request",
                                   field="id")
        if msg.request_hash != rhash:
            raise DuplicateRequest(f"the retry differs from purchase {purchaseId} (meter or "
                                   "amount)", field="purchaseAmount")
        if msg.status == "failed":
            raise _stored_failure(msg)
    # done or running: the service is idempotent on the id (a running twin is waited for)
    sale = _sell(request, purchaseId, pan, amount)
    return _purchase_reply(request, body, sale, cur, 202)


@router.post("/tokenPurchases/{trialId}/trial", status_code=200,
             operation_id="trialTokenPurchaseRequest", response_model=None,
             summary="Trial purchase: the outcome, no valid token, nothing stored",
             responses=_responses(PurchaseResponse, 200, E))
def trial_token_purchase(trialId: str, body: PurchaseRequest, request: Request) -> Response:
    _same(trialId, body.id, "id")
    pan, cur, amount, rhash = _purchase_inputs(request, body)
    _new_request(request, trialId, "trial", rhash)
    svc, caller = service_of(request), basic_of(request).caller
    try:
        if amount == 0:
            look = svc.lookup(pan, caller)
            if Decimal(look["free_units_due"]) <= 0:
                raise NoFreeUnitsDue(f"meter {pan} has no free units due", field="amount")
            receipt = {"receipt_no": "", "utility": look["utility"], "meter": look["meter"],
                       "customer": look["customer"], "amount": "0", "steps": [],
                       "energy_net": "0", "energy_amount": "0",
                       "vat": {"rate": "0", "amount": "0"}}
            sale = {"receipt": receipt, "slip": "",
                    "tokens": [{"kind": "FBE", "units": look["free_units_due"], "token": None}]}
        else:
            sale = svc.trial({"meter": pan, "amount": str(amount)}, caller)
    except StsError as exc:
        _record(svc, trialId, OPERATIONS["trialTokenPurchaseRequest"][0], exc)
        raise
    messages.finish(svc.db, trialId, status="done", now=svc.now(), http_status=200)
    out = convert.purchase_body(sale, body.meter.meter_id, cur, utility_type=body.utility_type,
                                trial=True)
    return _answer(PurchaseResponse, raw_of(request), out, 200, trialId)


# --- advices ---------------------------------------------------------------------------------


def _await_sale(request: Request, purchase_id: str) -> dict[str, Any] | None:
    """The sale an advice refers to; None if that purchase was refused.  A purchase still
    running is waited for (up to the advice deadline, then 504: the client repeats)."""
    svc, caller = service_of(request), basic_of(request).caller
    wait = float(getattr(request.app.state, "electrum_advice_wait", 10.0))
    deadline = time.monotonic() + wait
    while True:
        msg = messages.get(svc.db, purchase_id)
        if msg is not None and msg.operation != "purchase":
            raise UnknownRecord(f"{purchase_id} is not a purchase", field="requestId")
        if msg is not None and msg.status == "failed":
            return None
        try:
            sale = svc.get_purchase(purchase_id, caller)
        except UnknownRecord:
            sale = None
        if sale is not None:
            if msg is not None and msg.status == "pending":  # sold, then the server died
                messages.finish(svc.db, purchase_id, status="done", now=svc.now(),
                                http_status=201,
                                outcome={"receipt_no": sale["receipt"]["receipt_no"]})
            return sale
        if msg is None or msg.status == "done" or (
                svc.now() - msg.created_at).total_seconds() > STALE_SECONDS:
            raise UnknownRecord(f"no purchase {purchase_id}", field="requestId")
        if time.monotonic() >= deadline:
            raise OutcomeUnknown(f"purchase {purchase_id} is still running; repeat the advice",
                                 field="requestId")
        time.sleep(0.05)  # a running purchase: poll until its outcome is stored


def _advice(request: Request, advice_id: str, operation: str, ref_id: str) -> bool:
    """Claim an advice id; True when this advice was already accepted (a repeat)."""
    rhash = request_hash({"operation": operation, "requestId": ref_id})
    created, msg = _claim(request, advice_id, operation, rhash, ref_id=ref_id)
    if created:
        return False
    if msg.operation != operation or msg.ref_id != ref_id:
        raise DuplicateRequest(f"id {advice_id} was already used (by a {msg.operation})",
                               field="id")
    if msg.status == "failed":
        raise _stored_failure(msg)
    return msg.status == "done"


def _advice_done(request: Request, advice_id: str, outcome: dict[str, Any]) -> None:
    svc = service_of(request)
    messages.finish(svc.db, advice_id, status="done", now=svc.now(), http_status=202,
                    outcome=outcome)


@router.post("/tokenPurchases/{purchaseId}/confirmations/{confirmationId}", status_code=202,
             operation_id="confirmTokenPurchase", response_model=None,
             summary="Confirm a purchase (advice)",
             responses=_responses(BasicAdviceResponse, 202, E404))
def confirm_token_purchase(purchaseId: str, confirmationId: str, body: ConfirmationAdvice,
                           request: Request) -> Response:
    _same(confirmationId, body.id, "id")
    _same(purchaseId, body.request_id, "requestId")
    if _advice(request, confirmationId, "confirmation", purchaseId):
        return _advice_answer(raw_of(request))
    svc = service_of(request)
    try:
        if _await_sale(request, purchaseId) is None:
            raise UnknownRecord(f"purchase {purchaseId} was refused: nothing to confirm",
                                field="requestId")
        advices.confirm(svc.db, purchaseId, confirmationId, svc.now())
    except StsError as exc:
        _record(svc, confirmationId, OPERATIONS["confirmTokenPurchase"][0], exc)
        raise
    _advice_done(request, confirmationId, {"confirmed": purchaseId})
    return _advice_answer(raw_of(request))


@router.post("/tokenPurchases/{purchaseId}/reversals/{reversalId}", status_code=202,
             operation_id="reverseTokenPurchase", response_model=None,
             summary="Reverse a purchase (advice)",
             responses=_responses(BasicAdviceResponse, 202, E404))
def reverse_token_purchase(purchaseId: str, reversalId: str, body: ReversalAdvice,
                           request: Request) -> Response:
    _same(reversalId, body.id, "id")
    _same(purchaseId, body.request_id, "requestId")
    if _advice(request, reversalId, "reversal", purchaseId):
        return _advice_answer(raw_of(request))
    svc, caller = service_of(request), basic_of(request).caller
    try:
        sale = _await_sale(request, purchaseId)
        if sale is not None:  # a refused purchase moved nothing: there is nothing to undo
            reason = f"{body.reversal_reason}: reversal advice {reversalId}"
            advices.reverse(svc, purchaseId, reversalId, reason, caller)
    except StsError as exc:
        _record(svc, reversalId, OPERATIONS["reverseTokenPurchase"][0], exc)
        raise
    _advice_done(request, reversalId, {"reversed": purchaseId, "sale": sale is not None})
    return _advice_answer(raw_of(request))


# --- lookups, reprints, key changes, faults, events ------------------------------------------


@router.post("/meterLookups/{lookupId}", status_code=201, operation_id="createMeterLookup",
             response_model=None, summary="Meter lookup",
             responses=_responses(MeterLookupResponse, 201, E))
def create_meter_lookup(lookupId: str, body: MeterLookupRequest, request: Request) -> Response:
    _same(lookupId, body.id, "id")
    svc, basic = service_of(request), basic_of(request)
    _originator(basic, body.originator.institution.id)
    pan = _pan(body.meter)
    cur = _currency(svc, pan)
    _new_request(request, lookupId, "lookup", request_hash({"meter": pan}))
    try:
        look = svc.lookup(pan, basic.caller)
        if not look["can_vend"]:
            raise MeterBlocked(f"meter {pan} is blocked: {look.get('blocked_reason', '')}",
                               field="meter.meterId")
    except StsError as exc:
        _record(svc, lookupId, OPERATIONS["createMeterLookup"][0], exc)
        raise
    messages.finish(svc.db, lookupId, status="done", now=svc.now(), http_status=201)
    return _answer(MeterLookupResponse, raw_of(request),
                   convert.lookup_body(look, body.meter.meter_id, cur), 201, lookupId)


def _reprint_ref(svc: VendingService, caller: Any, ref: str) -> dict[str, Any]:
    if ref.isdigit() and len(ref) <= 10:
        return {"receipt_no": ref}
    try:
        sale = svc.get_purchase(ref, caller)
    except (UnknownRecord, StsError):
        raise UnknownRecord(f"no purchase or receipt {ref}", field="originalRef") from None
    return {"receipt_no": sale["receipt"]["receipt_no"]}


@router.post("/tokenReprints/{reprintId}", status_code=200, operation_id="requestTokenReprint",
             response_model=None, summary="Token reprint",
             responses=_responses(PurchaseResponse, 200, E))
def request_token_reprint(reprintId: str, body: TokenReprintRequest,
                          request: Request) -> Response:
    _same(reprintId, body.id, "id")
    svc, basic = service_of(request), basic_of(request)
    _originator(basic, body.originator.institution.id)
    pan = _pan(body.meter)
    cur = _currency(svc, pan)
    _new_request(request, reprintId, "reprint",
                 request_hash({"meter": pan, "originalRef": body.original_ref}))
    try:
        query = ({"meter": pan} if not body.original_ref
                 else _reprint_ref(svc, basic.caller, body.original_ref))
        sale = svc.reprint(query, basic.caller)
        if sale["receipt"]["meter"]["pan"] != pan:
            raise UnknownRecord(f"receipt {body.original_ref} is not for meter "
                                f"{body.meter.meter_id}", field="originalRef")
    except StsError as exc:
        _record(svc, reprintId, OPERATIONS["requestTokenReprint"][0], exc)
        raise
    messages.finish(svc.db, reprintId, status="done", now=svc.now(), http_status=200)
    out = convert.purchase_body(sale, body.meter.meter_id, cur)
    return _answer(PurchaseResponse, raw_of(request), out, 200,
                   sale["receipt"].get("receipt_no") or None)


@router.post("/keyChangeTokenRequests/{requestId}", status_code=201,
             operation_id="createKeyChangeTokenRequest", response_model=None,
             summary="Key change tokens", responses=_responses(KeyChangeTokenResponse, 201, E))
def create_key_change_tokens(requestId: str, body: KeyChangeTokenRequest,
                             request: Request) -> Response:
    _same(requestId, body.id, "id")
    svc, basic = service_of(request), basic_of(request)
    _originator(basic, body.originator.institution.id)
    pan = _pan(body.meter)
    cur = _currency(svc, pan)
    _new_request(request, requestId, "key_change", request_hash({"meter": pan}))
    try:
        out, _ = key_change_tokens.request(svc, requestId, pan, basic.caller)
    except StsError as exc:
        _record(svc, requestId, OPERATIONS["createKeyChangeTokenRequest"][0], exc)
        raise
    kc = convert.key_change_body(out, body.meter.meter_id, cur)
    ref = kc["tokens"][0]["receiptNum"] if kc["tokens"] else None
    messages.finish(svc.db, requestId, status="done", now=svc.now(), http_status=201,
                    outcome={"receipt_no": ref})
    return _answer(KeyChangeTokenResponse, raw_of(request), kc, 201, ref)


@router.post("/keyChangeTokenRequests/{requestId}/confirmations/{confirmationId}",
             status_code=202, operation_id="confirmKeyChange", response_model=None,
             summary="Confirm delivery of key change tokens (advice)",
             responses=_responses(BasicAdvice, 202, E404))
def confirm_key_change(requestId: str, confirmationId: str, body: KeyChangeConfirmation,
                       request: Request) -> Response:
    _same(confirmationId, body.id, "id")
    _same(requestId, body.request_id, "requestId")
    if _advice(request, confirmationId, "key_change_confirmation", requestId):
        return _advice_answer(raw_of(request))
    svc = service_of(request)
    kc = messages.get(svc.db, requestId)
    if kc is None or kc.operation != "key_change" or kc.status != "done":
        raise UnknownRecord(f"no key change token request {requestId}", field="requestId")
    _advice_done(request, confirmationId, {"delivered": requestId})
    return _advice_answer(raw_of(request))


@router.post("/faultReports/{requestId}", status_code=201, operation_id="createFaultReport",
             response_model=None, summary="Fault report",
             responses=_responses(FaultReportResponse, 201, E))
def create_fault_report(requestId: str, body: FaultReportRequest, request: Request) -> Response:
    _same(requestId, body.id, "id")
    svc, basic = service_of(request), basic_of(request)
    _originator(basic, body.originator.institution.id)
    pan = _pan(body.meter)
    _new_request(request, requestId, "fault_report", request_hash({"meter": pan}))
    try:
        rep, _ = faults.report(
            svc.db, svc.clock, request_id=requestId, pan=pan,
            fault_type=fault_constant(str(body.fault_type)),
            description=body.fault_description or "", contact_number=body.contact_number,
            customer=body.customer.dump() if body.customer else None, caller=basic.caller)
    except StsError as exc:
        _record(svc, requestId, OPERATIONS["createFaultReport"][0], exc)
        raise
    messages.finish(svc.db, requestId, status="done", now=svc.now(), http_status=201,
                    outcome={"reference": rep["reference"]})
    text = (f"Fault {body.fault_type} on meter {body.meter.meter_id} logged as "
            f"{rep['reference']}; the utility will contact {body.contact_number}.")
    return _answer(FaultReportResponse, raw_of(request),
                   {"reference": rep["reference"], "description": text[:160]}, 201,
                   rep["reference"])


@router.post("/events/tokenPurchases", status_code=202, operation_id="notifyTokenPurchase",
             response_model=None, summary="Notification of a token purchase (event)",
             responses={202: {"description": "Accepted"}, **_responses(None, 0, E404)})
def notify_token_purchase(purchaseId: str, body: PurchaseResponse, request: Request) -> Response:
    check_request_id(purchaseId, "purchaseId")
    svc, basic = service_of(request), basic_of(request)
    _originator(basic, body.originator.institution.id)
    try:
        svc.get_purchase(purchaseId, basic.caller)
    except UnknownRecord:
        raise UnknownRecord(f"no purchase {purchaseId}", field="purchaseId") from None
    request.state.detail = f"tokens={len(body.tokens or [])}"
    return Response(status_code=202)


# --- mounting --------------------------------------------------------------------------------


def mount(app: FastAPI) -> None:
    """Serve the interface on `app` (one call in the app factory)."""
    app.include_router(router)
    app.state.electrum_advice_wait = float(os.environ.get("STS_ELECTRUM_ADVICE_WAIT", "10"))
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base_openapi()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["httpBasic"] = {
            "type": "http", "scheme": "basic",
            "description": "Credentials issued per vendor (sts admin electrum add)"}
        for path, item in schema.get("paths", {}).items():
            if not path.startswith(PREFIX):
                continue
            for op in item.values():
                op["responses"].pop("422", None)  # validation failures are 400 ErrorDetail
                if op.get("operationId") == "notifyTokenPurchase":
                    op["responses"]["202"] = {"description": "Accepted"}  # no body
                op["security"] = [{"httpBasic": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
