"""REST route of mobile-money payments, included by `sts.server.app.create_app`:

GET /v1/payments?provider=mpesa&provider_id=ID      one payment, with its sale
GET /v1/payments?state=exception&after_id=&limit=   a page of payments (oldest first)
POST /v1/payments/{provider}/{provider_id}/settlement {"action": "sell"|"refund", "reason"}

For supervisors, admins and auditors (`sts.vending.access.policy`: "payments"); the sale's
receipt and tokens only for roles that read sales.  One shape for both: a page, which for
one provider id holds that payment alone (or 404 UNKNOWN_RECORD).
"""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from sts.errors import InputError
from sts.server.dependencies import Auth, errors_doc, ok_doc
from sts.server.schemas import (
    DELIVERY_ID_MAX,
    PAYMENT_STATE_MAX,
    PROVIDER_ID_MAX,
    PROVIDER_MAX,
    PaymentOut,
    PaymentsOut,
    SettlementBody,
)
from sts.vending.service import VendingService
from sts.vending.usecases.payments import PAGE_MAX


def payment_router(service: VendingService) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/payments", summary="Mobile-money payments (one by provider id, or a page)",
                response_model=None,
                responses=ok_doc(PaymentsOut, "the payment, or one page of payments")
                | errors_doc(403, 404))
    def payments(
        who: Auth,
        provider: Annotated[str | None, Query(max_length=PROVIDER_MAX,
                                              description="mpesa")] = None,
        provider_id: Annotated[str | None, Query(max_length=PROVIDER_ID_MAX, description=(
            "the provider's transaction id (M-Pesa TransID); needs provider"))] = None,
        state: Annotated[str | None, Query(max_length=PAYMENT_STATE_MAX, description=(
            "received, sold, exception or refunded"))] = None,
        after_id: Annotated[int, Query(ge=0, le=DELIVERY_ID_MAX,
                                       description="the last id of the previous page")] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="payments per page")] = 100,
    ) -> dict[str, Any]:
        if provider_id is not None:
            if provider is None:
                raise InputError("provider_id needs provider (e.g. provider=mpesa)",
                                 field="provider")
            return {"payments": [service.payment(provider, provider_id, who)],
                    "next_after_id": None}
        return service.list_payments(who, state=state, provider=provider, after_id=after_id,
                                     limit=limit)

    @router.post("/v1/payments/{provider}/{provider_id}/settlement",
                 summary="Settle an exception: sell it again, or record its refund",
                 response_model=None,
                 responses=ok_doc(PaymentOut, "the payment, settled") | errors_doc(403, 404, 409))
    def settle(provider: Annotated[str, Path(max_length=PROVIDER_MAX, description="mpesa")],
               provider_id: Annotated[str, Path(max_length=PROVIDER_ID_MAX,
                                                description="the provider's transaction id")],
               body: SettlementBody, who: Auth) -> dict[str, Any]:
        return service.settle_payment(provider, provider_id, body.action, body.reason, who)

    return router
