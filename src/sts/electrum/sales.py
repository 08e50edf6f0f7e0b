"""Sales over the interface: purchases, retries, trials, and their advices (confirmations and
reversals), each a translation onto the vending service and its advice module."""


from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sts.electrum import convert
from sts.electrum.http import (
    OPERATIONS,
    basic_of,
    raw_of,
    service_of,
)
from sts.electrum.models import (
    BasicAdviceResponse,
    ConfirmationAdvice,
    PurchaseRequest,
    PurchaseResponse,
    ReversalAdvice,
)
from sts.electrum.steps import (
    E404,
    STALE_SECONDS,
    E,
    amount_of,
    answer,
    check_originator,
    claim,
    currency_of,
    meter_pan,
    new_request,
    record_refusal,
    responses_for,
    router,
    run_advice,
    same_id,
    stored_failure,
)
from sts.errors import (
    DuplicateRequest,
    OutcomeUnknown,
    RequestNotSupported,
    StsError,
    UnknownRecord,
)
from sts.vending import messages
from sts.vending.currency import Currency
from sts.vending.ledger import check_request_id, request_hash

# --- purchases -------------------------------------------------------------------------------


def _sell(request: Request, purchase_id: str, pan: str, amount: Decimal) -> dict[str, Any]:
    """The sale (or the stored sale) for an id; a final refusal is kept with the id."""
    svc, basic = service_of(request), basic_of(request)
    try:
        if amount == 0:
            sale, _ = svc.claim_free_units(purchase_id, pan, basic.caller)
        else:
            sale, _ = svc.purchase(purchase_id, {"meter": pan, "amount": str(amount)},
                                   basic.caller)
    except StsError as exc:
        record_refusal(svc, purchase_id, OPERATIONS["createTokenPurchaseRequest"][0], exc)
        raise
    messages.finish(svc.db, purchase_id, status="done", now=svc.now(), http_status=201,
                    outcome={"receipt_no": sale["receipt"]["receipt_no"]})
    return sale


def _purchase_reply(request: Request, body: PurchaseRequest, sale: dict[str, Any],
                    cur: Currency, status: int) -> JSONResponse:
    out = convert.purchase_body(sale, body.meter.meter_id, cur, utility_type=body.utility_type)
    return answer(PurchaseResponse, raw_of(request), out, status,
                   sale["receipt"].get("receipt_no") or None)


def _purchase_inputs(request: Request, body: PurchaseRequest) -> tuple[str, Currency, Decimal,
                                                                       str]:
    check_originator(basic_of(request), body.originator.institution.id)
    if body.payment_methods:
        raise RequestNotSupported("third-party payment collection (paymentMethods) is not "
                                  "offered: collect payment at the POS and send tenders",
                                  field="paymentMethods")
    pan = meter_pan(body.meter)
    cur = currency_of(service_of(request), pan)
    amount = amount_of(body.purchase_amount, cur)
    rhash = request_hash({"meter": pan, "amount": body.purchase_amount.amount,
                          "currency": body.purchase_amount.currency})
    return pan, cur, amount, rhash


def _new_sale_request(request: Request, path_id: str, body: PurchaseRequest,
                      operation: str) -> tuple[str, Currency, Decimal]:
    """Opening of a purchase or a trial: ids, inputs, and the new id claimed."""
    same_id(path_id, body.id, "id")
    pan, cur, amount, rhash = _purchase_inputs(request, body)
    new_request(request, path_id, operation, rhash)
    return pan, cur, amount


@router.post("/tokenPurchases/{purchaseId}", status_code=201,
             operation_id="createTokenPurchaseRequest", response_model=None,
             summary="Token purchase", responses=responses_for(PurchaseResponse, 201, E))
def create_token_purchase(purchaseId: str, body: PurchaseRequest, request: Request) -> Response:
    pan, cur, amount = _new_sale_request(request, purchaseId, body, "purchase")
    sale = _sell(request, purchaseId, pan, amount)
    return _purchase_reply(request, body, sale, cur, 201)


@router.post("/tokenPurchases/{purchaseId}/retry", status_code=202,
             operation_id="retryPurchaseRequest", response_model=None,
             summary="Retry a purchase: the original answer",
             responses=responses_for(PurchaseResponse, 202, E404))
def retry_token_purchase(purchaseId: str, body: PurchaseRequest, request: Request) -> Response:
    check_request_id(purchaseId, "purchaseId")
    pan, cur, amount, rhash = _purchase_inputs(request, body)
    created, msg = claim(request, purchaseId, "purchase", rhash)
    if not created:
        if msg.operation != "purchase":
            raise DuplicateRequest(f"id {purchaseId} belongs to a {msg.operation} request",
                                   field="id")
        if msg.request_hash != rhash:
            raise DuplicateRequest(f"the retry differs from purchase {purchaseId} (meter or "
                                   "amount)", field="purchaseAmount")
        if msg.status == "failed":
            raise stored_failure(msg)
    # done or running: the service is idempotent on the id (a running twin is waited for)
    sale = _sell(request, purchaseId, pan, amount)
    return _purchase_reply(request, body, sale, cur, 202)


@router.post("/tokenPurchases/{trialId}/trial", status_code=200,
             operation_id="trialTokenPurchaseRequest", response_model=None,
             summary="Trial purchase: the outcome, no valid token, nothing stored",
             responses=responses_for(PurchaseResponse, 200, E))
def trial_token_purchase(trialId: str, body: PurchaseRequest, request: Request) -> Response:
    pan, cur, amount = _new_sale_request(request, trialId, body, "trial")
    svc, caller = service_of(request), basic_of(request).caller
    try:
        if amount == 0:
            sale = svc.trial_free_units(pan, caller)
        else:
            sale = svc.trial({"meter": pan, "amount": str(amount)}, caller)
    except StsError as exc:
        record_refusal(svc, trialId, OPERATIONS["trialTokenPurchaseRequest"][0], exc)
        raise
    messages.finish(svc.db, trialId, status="done", now=svc.now(), http_status=200)
    out = convert.purchase_body(sale, body.meter.meter_id, cur, utility_type=body.utility_type,
                                trial=True)
    return answer(PurchaseResponse, raw_of(request), out, 200, trialId)


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


@router.post("/tokenPurchases/{purchaseId}/confirmations/{confirmationId}", status_code=202,
             operation_id="confirmTokenPurchase", response_model=None,
             summary="Confirm a purchase (advice)",
             responses=responses_for(BasicAdviceResponse, 202, E404))
def confirm_token_purchase(purchaseId: str, confirmationId: str, body: ConfirmationAdvice,
                           request: Request) -> Response:
    def work() -> dict[str, Any]:
        if _await_sale(request, purchaseId) is None:
            raise UnknownRecord(f"purchase {purchaseId} was refused: nothing to confirm",
                                field="requestId")
        svc = service_of(request)
        svc.confirm_sale(purchaseId, confirmationId, basic_of(request).caller)
        return {"confirmed": purchaseId}

    return run_advice(request, confirmationId, "confirmation", purchaseId, body,
                      "confirmTokenPurchase", work)


@router.post("/tokenPurchases/{purchaseId}/reversals/{reversalId}", status_code=202,
             operation_id="reverseTokenPurchase", response_model=None,
             summary="Reverse a purchase (advice)",
             responses=responses_for(BasicAdviceResponse, 202, E404))
def reverse_token_purchase(purchaseId: str, reversalId: str, body: ReversalAdvice,
                           request: Request) -> Response:
    def work() -> dict[str, Any]:
        try:
            sale = _await_sale(request, purchaseId)
        except UnknownRecord:  # not seen yet (it may still come): the service remembers it
            sale = {}
        if sale is not None:  # a refused purchase moved nothing: there is nothing to undo
            reason = f"{body.reversal_reason}: reversal advice {reversalId}"
            service_of(request).reverse_advice(purchaseId, reversalId, reason,
                                               basic_of(request).caller)
        return {"reversed": purchaseId, "sale": bool(sale)}

    return run_advice(request, reversalId, "reversal", purchaseId, body,
                      "reverseTokenPurchase", work)
