"""The operations of Electrum's Prepaid Utility Service Interface v3 (/prepaidutility/v3), each
a translation onto the vending service (digest §2).  No business rule lives here: sales,
free units, reversals, confirmations, key change tokens and fault reports are the service's and
its modules'; this face checks the interface's own rules (path ids, currency, message ids),
converts, and echoes the envelope.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sts.electrum import (
    convert,
    fallback,
    sales,  # noqa: F401 - registers the sale operations on the router
)
from sts.electrum.http import (
    OPERATIONS,
    PREFIX,
    basic_of,
    raw_of,
    service_of,
)
from sts.electrum.models import (
    BasicAdvice,
    FaultReportRequest,
    FaultReportResponse,
    KeyChangeConfirmation,
    KeyChangeTokenRequest,
    KeyChangeTokenResponse,
    MeterLookupRequest,
    MeterLookupResponse,
    PurchaseResponse,
    TokenReprintRequest,
    fault_constant,
)
from sts.electrum.steps import (
    E404,
    E,
    answer,
    check_originator,
    currency_of,
    new_request,
    open_request,
    record_refusal,
    responses_for,
    router,
    run_advice,
)
from sts.errors import (
    MeterBlocked,
    StsError,
    UnknownRecord,
)
from sts.vending import faults, messages
from sts.vending.ledger import check_request_id, request_hash
from sts.vending.service import VendingService

# --- lookups, reprints, key changes, faults, events ------------------------------------------


@router.post("/meterLookups/{lookupId}", status_code=201, operation_id="createMeterLookup",
             response_model=None, summary="Meter lookup",
             responses=responses_for(MeterLookupResponse, 201, E))
def create_meter_lookup(lookupId: str, body: MeterLookupRequest, request: Request) -> Response:
    svc, basic, pan = open_request(request, lookupId, body)
    cur = currency_of(svc, pan)
    new_request(request, lookupId, "lookup", request_hash({"meter": pan}))
    try:
        look = svc.lookup(pan, basic.caller)
        if not look["can_vend"]:
            raise MeterBlocked(f"meter {pan} is blocked: {look.get('blocked_reason', '')}",
                               field="meter.meterId")
    except StsError as exc:
        record_refusal(svc, lookupId, OPERATIONS["createMeterLookup"][0], exc)
        raise
    messages.finish(svc.db, lookupId, status="done", now=svc.now(), http_status=201)
    return answer(MeterLookupResponse, raw_of(request),
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
             responses=responses_for(PurchaseResponse, 200, E))
def request_token_reprint(reprintId: str, body: TokenReprintRequest,
                          request: Request) -> Response:
    svc, basic, pan = open_request(request, reprintId, body)
    cur = currency_of(svc, pan)
    new_request(request, reprintId, "reprint",
                 request_hash({"meter": pan, "originalRef": body.original_ref}))
    try:
        query = ({"meter": pan} if not body.original_ref
                 else _reprint_ref(svc, basic.caller, body.original_ref))
        sale = svc.reprint(query, basic.caller)
        if sale["receipt"]["meter"]["pan"] != pan:
            raise UnknownRecord(f"receipt {body.original_ref} is not for meter "
                                f"{body.meter.meter_id}", field="originalRef")
    except StsError as exc:
        record_refusal(svc, reprintId, OPERATIONS["requestTokenReprint"][0], exc)
        raise
    messages.finish(svc.db, reprintId, status="done", now=svc.now(), http_status=200)
    out = convert.purchase_body(sale, body.meter.meter_id, cur)
    return answer(PurchaseResponse, raw_of(request), out, 200,
                   sale["receipt"].get("receipt_no") or None)


@router.post("/keyChangeTokenRequests/{requestId}", status_code=201,
             operation_id="createKeyChangeTokenRequest", response_model=None,
             summary="Key change tokens", responses=responses_for(KeyChangeTokenResponse, 201, E))
def create_key_change_tokens(requestId: str, body: KeyChangeTokenRequest,
                             request: Request) -> Response:
    svc, basic, pan = open_request(request, requestId, body)
    cur = currency_of(svc, pan)
    new_request(request, requestId, "key_change", request_hash({"meter": pan}))
    try:
        out, _ = svc.key_change_tokens(requestId, pan, basic.caller)
    except StsError as exc:
        record_refusal(svc, requestId, OPERATIONS["createKeyChangeTokenRequest"][0], exc)
        raise
    kc = convert.key_change_body(out, body.meter.meter_id, cur)
    ref = kc["tokens"][0]["receiptNum"] if kc["tokens"] else None
    messages.finish(svc.db, requestId, status="done", now=svc.now(), http_status=201,
                    outcome={"receipt_no": ref})
    return answer(KeyChangeTokenResponse, raw_of(request), kc, 201, ref)


@router.post("/keyChangeTokenRequests/{requestId}/confirmations/{confirmationId}",
             status_code=202, operation_id="confirmKeyChange", response_model=None,
             summary="Confirm delivery of key change tokens (advice)",
             responses=responses_for(BasicAdvice, 202, E404))
def confirm_key_change(requestId: str, confirmationId: str, body: KeyChangeConfirmation,
                       request: Request) -> Response:
    def work() -> dict[str, Any]:
        kc = messages.get(service_of(request).db, requestId)
        if kc is None or kc.operation != "key_change" or kc.status != "done":
            raise UnknownRecord(f"no key change token request {requestId}", field="requestId")
        return {"delivered": requestId}

    return run_advice(request, confirmationId, "key_change_confirmation", requestId, body,
                      "confirmKeyChange", work)


@router.post("/faultReports/{requestId}", status_code=201, operation_id="createFaultReport",
             response_model=None, summary="Fault report",
             responses=responses_for(FaultReportResponse, 201, E))
def create_fault_report(requestId: str, body: FaultReportRequest, request: Request) -> Response:
    svc, basic, pan = open_request(request, requestId, body)
    new_request(request, requestId, "fault_report", request_hash({"meter": pan}))
    try:
        rep, _ = faults.report(
            svc.db, svc.clock, request_id=requestId, pan=pan,
            fault_type=fault_constant(str(body.fault_type)),
            description=body.fault_description or "", contact_number=body.contact_number,
            customer=body.customer.dump() if body.customer else None, caller=basic.caller)
    except StsError as exc:
        record_refusal(svc, requestId, OPERATIONS["createFaultReport"][0], exc)
        raise
    messages.finish(svc.db, requestId, status="done", now=svc.now(), http_status=201,
                    outcome={"reference": rep["reference"]})
    text = (f"Fault {body.fault_type} on meter {body.meter.meter_id} logged as "
            f"{rep['reference']}; the utility will contact {body.contact_number}.")
    return answer(FaultReportResponse, raw_of(request),
                   {"reference": rep["reference"], "description": text[:160]}, 201,
                   rep["reference"])


@router.post("/events/tokenPurchases", status_code=202, operation_id="notifyTokenPurchase",
             response_model=None, summary="Notification of a token purchase (event)",
             responses={202: {"description": "Accepted"}, **responses_for(None, 0, E404)})
def notify_token_purchase(purchaseId: str, body: PurchaseResponse, request: Request) -> Response:
    check_request_id(purchaseId, "purchaseId")
    svc, basic = service_of(request), basic_of(request)
    check_originator(basic, body.originator.institution.id)
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
    # unknown paths and methods, oversized or non-UTF-8 bodies under the prefix: ErrorDetail
    if not hasattr(app.state, "error_renderers"):  # an app not made by sts.server.app
        app.state.error_renderers = {}
    app.state.error_renderers[PREFIX] = fallback.render

    def trailing_slash(rest: str) -> None:
        """No operation ends in "/": answer ErrorDetail (404), never the framework's empty
        307 to the path without it, which a switch would not follow with its body."""
        raise StarletteHTTPException(404)

    app.add_api_route(PREFIX + "/{rest:path}/", trailing_slash, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
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
