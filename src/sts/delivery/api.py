"""REST routes of token delivery, included by `sts.vending.api.create_app`:

GET  /v1/deliveries?status=rejected&channel=&meter=&purchase_id=&after_id=&limit=
POST /v1/purchases/{purchase_id}/deliveries   {"channel": "sms", "to"?: "...", "lang"?: ".."}

A vendor sees and resends only its own sales.  The purchase's own delivery status is part of
GET /v1/purchases/{id} (`"delivery"`).
"""

# no `from __future__ import annotations`: FastAPI reads the local Auth alias at runtime

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sts.delivery import outbox
from sts.vending.auth import Caller
from sts.vending.service import VendingService, check_request_id


class ResendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(description="sms, email or ami")
    to: str | None = Field(None, max_length=254,
                           description="default: the channel's last recipient for this sale")
    lang: str | None = Field(None, max_length=8)


def delivery_router(service: VendingService, caller_dep: Callable[..., Caller]) -> APIRouter:
    router = APIRouter()
    Auth = Annotated[Caller, Depends(caller_dep)]

    @router.get("/v1/deliveries", summary="Token deliveries (e.g. ?status=rejected)")
    def list_deliveries(who: Auth, status: str | None = None, channel: str | None = None,
                        meter: str | None = None, purchase_id: str | None = None,
                        after_id: int = 0, limit: int = 100) -> dict[str, Any]:
        who.require("deliveries")
        vendor = who.vendor_id if who.role in ("vendor", "supervisor") else None
        with service.db.read() as conn:
            items = outbox.list_deliveries(conn, status=status, channel=channel, meter=meter,
                                           request_id=purchase_id, vendor_id=vendor,
                                           after_id=after_id, limit=limit)
        return {"deliveries": items,
                "next_after_id": items[-1]["id"] if len(items) == limit else None}

    @router.post("/v1/purchases/{purchase_id}/deliveries", status_code=202,
                 summary="Resend a purchase's tokens to a channel (new attempt, same tokens)")
    def resend(purchase_id: str, body: ResendBody, who: Auth) -> JSONResponse:
        who.require("resend")
        check_request_id(purchase_id, "purchase_id")
        vendor = who.vendor_id if who.role in ("vendor", "supervisor") else None
        now = service.clock()
        with service.db.begin() as conn:
            out = outbox.resend(service.db, conn, purchase_id, body.channel, body.to, body.lang,
                                actor=who.actor, vendor_id=vendor, now=now)
        return JSONResponse(out, status_code=202)

    return router
