"""REST routes of token delivery, included by `sts.server.app.create_app`:

GET  /v1/deliveries?status=rejected&channel=&meter=&purchase_id=&after_id=&limit=
POST /v1/purchases/{purchase_id}/deliveries   {"channel": "sms", "to"?: "...", "lang"?: ".."}

Who sees and resends what is the service's access policy (`sts.vending.access.policy`).  The purchase's own
delivery status is part of GET /v1/purchases/{id} (`"delivery"`).  Models and limits:
`sts.server.schemas`; errors are the app's one shape.
"""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from sts.server.dependencies import Auth, errors_doc, ok_doc
from sts.server.schemas import (
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
from sts.vending.usecases.deliveries import PAGE_MAX


def delivery_router(service: VendingService) -> APIRouter:
    router = APIRouter()
    queued: dict[int | str, dict[str, Any]] = {
        202: {"model": DeliveryOut, "description": "the new job, queued"}}

    @router.get("/v1/deliveries", summary="Token deliveries, oldest first (e.g. ?status=rejected)",
                response_model=None,
                responses=ok_doc(DeliveriesOut, "one page of delivery jobs") | errors_doc(403))
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
        return service.deliveries(who, status=status, channel=channel, meter=meter,
                                  purchase_id=purchase_id, after_id=after_id, limit=limit)

    @router.post("/v1/purchases/{purchase_id}/deliveries", status_code=202,
                 summary="Resend a purchase's tokens to a channel (new attempt, same tokens)",
                 response_model=None,
                 responses=queued | errors_doc(403, 404, 409))
    def resend(purchase_id: Annotated[str, Path(max_length=REQUEST_ID_MAX,
                                                description="the purchase's id")],
               body: ResendBody, who: Auth) -> JSONResponse:
        out = service.resend(purchase_id, body.channel, body.to, body.lang, who)
        return JSONResponse(out, status_code=202)

    return router
