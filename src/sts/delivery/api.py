"""REST routes of token delivery, included by `sts.vending.api.create_app`:

GET  /v1/deliveries?status=rejected&channel=&meter=&purchase_id=&after_id=&limit=
POST /v1/purchases/{purchase_id}/deliveries   {"channel": "sms", "to"?: "...", "lang"?: ".."}

A vendor (and its supervisor) sees and resends only its own sales.  The purchase's own
delivery status is part of GET /v1/purchases/{id} (`"delivery"`).  Models and limits:
`sts.vending.schemas`; errors are the app's one shape.
"""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from sts.delivery import outbox
from sts.vending.auth import Caller
from sts.vending.ledger import check_request_id
from sts.vending.schemas import (
    CHANNEL_MAX,
    DELIVERY_ID_MAX,
    DELIVERY_STATUS_MAX,
    METER_MAX,
    REQUEST_ID_MAX,
    DeliveriesOut,
    DeliveryOut,
    ResendBody,
)
from sts.vending.service import VendingService

PAGE_MAX = 1000


def _vendor_of(who: Caller) -> int | None:
    """The vendor whose sales the caller may see: its own for vendor and supervisor keys."""
    vendor: int | None = who.vendor_id if who.role in ("vendor", "supervisor") else None
    return vendor


def delivery_router(service: VendingService) -> APIRouter:
    from sts.vending.api import Auth, _errors, _ok  # the app's auth and error documentation

    router = APIRouter()
    queued: dict[int | str, dict[str, Any]] = {
        202: {"model": DeliveryOut, "description": "the new job, queued"}}

    @router.get("/v1/deliveries", summary="Token deliveries, oldest first (e.g. ?status=rejected)",
                response_model=None,
                responses=_ok(DeliveriesOut, "one page of delivery jobs") | _errors(403))
    def list_deliveries(
        who: Auth,
        status: Annotated[str | None, Query(max_length=DELIVERY_STATUS_MAX, description=(
            "pending, sent, delivered, accepted, rejected or failed"))] = None,
        channel: Annotated[str | None, Query(max_length=CHANNEL_MAX,
                                             description="sms, email or ami")] = None,
        meter: Annotated[str | None, Query(max_length=METER_MAX,
                                           description="the meter number")] = None,
        purchase_id: Annotated[str | None, Query(max_length=REQUEST_ID_MAX,
                                                 description="one purchase")] = None,
        after_id: Annotated[int, Query(ge=0, le=DELIVERY_ID_MAX,
                                       description="the last id of the previous page")] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="jobs per page")] = 100,
    ) -> dict[str, Any]:
        who.require("deliveries")
        with service.db.read() as conn:
            items = outbox.list_deliveries(conn, status=status, channel=channel, meter=meter,
                                           request_id=purchase_id, vendor_id=_vendor_of(who),
                                           after_id=after_id, limit=limit)
        return {"deliveries": items,
                "next_after_id": items[-1]["id"] if len(items) == limit else None}

    @router.post("/v1/purchases/{purchase_id}/deliveries", status_code=202,
                 summary="Resend a purchase's tokens to a channel (new attempt, same tokens)",
                 response_model=None,
                 responses=queued | _errors(403, 404, 409))
    def resend(purchase_id: Annotated[str, Path(max_length=REQUEST_ID_MAX,
                                                description="the purchase's id")],
               body: ResendBody, who: Auth) -> JSONResponse:
        who.require("resend")
        check_request_id(purchase_id, "purchase_id")
        now = service.now()
        with service.db.begin() as conn:
            out = outbox.resend(service.db, conn, purchase_id, body.channel, body.to, body.lang,
                                actor=who.actor, vendor_id=_vendor_of(who), now=now)
        return JSONResponse(out, status_code=202)

    return router
