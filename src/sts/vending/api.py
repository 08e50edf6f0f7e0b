"""The REST face of the vending service (FastAPI; OpenAPI at /docs).

Shaped after Electrum's prepaid-utility API: the client names each purchase with its own UUID
in the path; sending it again returns the stored answer (200) and never a second token; the
same id with another body is 409 DUPLICATE_REQUEST.  Every /v1 endpoint needs
`Authorization: Bearer <api key>`.  Errors are always `{code, message, field?}`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sts.delivery.api import delivery_router
from sts.errors import StsError
from sts.vending import audit
from sts.vending.auth import Caller, authenticate, bearer_key
from sts.vending.config import Settings, open_service
from sts.vending.errors import api_error
from sts.vending.service import VendingService

log = logging.getLogger("sts.vending")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeliverItem(Body):
    channel: str = Field(description="sms, email or ami", examples=["sms"])
    to: str | None = Field(None, max_length=254, description="phone (+27...) or e-mail address")
    lang: str | None = Field(None, max_length=8, description="message language, e.g. en, af")


class PurchaseBody(Body):
    meter: str = Field(description="18-digit meter number (MeterPAN)", examples=["600727..."])
    amount: str = Field(description="amount tendered incl. VAT, decimal string", examples=["50"])
    reference: str | None = Field(None, max_length=64, description="client's own reference")
    pay_type: str | None = Field(None, max_length=20, description="cash, card, mobile, ...")
    deliver: list[DeliverItem] | None = Field(
        None, description="token delivery channels; an AMI-connected meter always gets ami")


class ReversalBody(Body):
    reason: str = Field(min_length=3, max_length=300)


class ReprintBody(Body):
    meter: str | None = None
    receipt_no: str | None = None


class EngineeringBody(Body):
    meter: str
    type: str = Field(description="clear_tamper, clear_credit, power_limit, phase_unbalance, "
                      "key_change or test")
    reason: str = Field(description="work order or note; required")
    watts: int | None = None
    register_: int | None = Field(None, alias="register", description="clear_credit register")
    control: int | None = None
    to_krn: int | None = None
    to_ti: int | None = None
    ro: bool | None = None
    deliver: list[DeliverItem] | None = None


class VerifyBody(Body):
    meter: str
    token: str


def _dump(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, by_alias=True)


def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    key = bearer_key(authorization)
    service: VendingService = request.app.state.service
    with service.db.read() as conn:
        return authenticate(conn, key)


Auth = Annotated[Caller, Depends(_caller)]


def _bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    """The API key, checked for form only; the service looks it up (purchases)."""
    return bearer_key(authorization)


BearerKey = Annotated[str, Depends(_bearer)]


def create_app(service: VendingService) -> FastAPI:
    app = FastAPI(title="STS vending server", version="1",
                  description="Prepaid token vending (IEC 62055-41), Electrum-style JSON API.")
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        body: dict[str, Any] = {"code": "INVALID_INPUT",
                                "message": first.get("msg", "invalid request")}
        json_error = first.get("type") == "json_invalid"
        body["field"] = ".".join(loc) if loc and not json_error else "body"
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StsError)
    async def _refused(_req: Request, exc: StsError) -> JSONResponse:
        status, body = api_error(exc)
        if status >= 500:
            log.error("request failed: %s [%s]", type(exc).__name__, exc.code)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(Exception)
    async def _error(_req: Request, exc: Exception) -> JSONResponse:
        status, body = api_error(exc)
        if status >= 500:
            log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse(body, status_code=status)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/meters/{meter}", summary="Meter lookup (confirm customer)")
    def lookup(meter: str, who: Auth, amount: str | None = None) -> dict[str, Any]:
        return service.lookup(meter, who, amount)

    @app.post("/v1/purchases/{purchase_id}", status_code=201, summary="Purchase (idempotent)")
    def purchase(purchase_id: str, body: PurchaseBody, key: BearerKey) -> Response:
        # the hot path: the key is checked inside the sale's own transaction, and the answer
        # is the stored JSON text (what a repeat returns), so it is not serialised twice
        out, created = service.purchase_json(purchase_id, _dump(body), key)
        return Response(out, status_code=201 if created else 200,
                        media_type="application/json")

    @app.get("/v1/purchases/{purchase_id}", summary="The stored answer of a purchase")
    def get_purchase(purchase_id: str, who: Auth) -> dict[str, Any]:
        return service.get_purchase(purchase_id, who)

    @app.post("/v1/purchases/{purchase_id}/reversals", status_code=201,
              summary="Reverse a purchase whose tokens never reached the customer")
    def reverse(purchase_id: str, body: ReversalBody, who: Auth) -> JSONResponse:
        out, created = service.reverse(purchase_id, body.reason, who)
        return JSONResponse(out, status_code=201 if created else 200)

    @app.post("/v1/trials", summary="Trial purchase: the full answer, no token, nothing stored")
    def trial(body: PurchaseBody, who: Auth) -> dict[str, Any]:
        return service.trial(_dump(body), who)

    @app.post("/v1/reprints", summary="Reprint the last purchase of a meter, or a receipt")
    def reprint(body: ReprintBody, who: Auth) -> dict[str, Any]:
        return service.reprint(_dump(body), who)

    @app.post("/v1/engineering/{request_id}", status_code=201, summary="Engineering tokens")
    def engineering(request_id: str, body: EngineeringBody, who: Auth) -> JSONResponse:
        out, created = service.engineering(request_id, _dump(body), who)
        return JSONResponse(out, status_code=201 if created else 200)

    @app.post("/v1/tokens/verify", summary="Decode a token and say whether it was issued")
    def verify(body: VerifyBody, who: Auth) -> dict[str, Any]:
        return service.verify_token(body.meter, body.token, who)

    # token delivery: GET /v1/deliveries, resend (sts.delivery.api)
    app.include_router(delivery_router(service, _caller))

    @app.get("/v1/audit/verify", summary="Check the audit and transaction hash chains")
    def audit_verify(who: Auth) -> dict[str, Any]:
        who.require("audit")
        return audit.verify(service.db).as_dict()

    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory used by `sts serve` workers (settings come from the environment).

    Request handlers run in a thread pool.  A thread holding a hot row lock (the vendor's
    float, a meter) must get the GIL back quickly to send its COMMIT, so workers use a short
    GIL switch interval and a small pool (STS_THREADS, default 4): more threads per process
    only lengthen lock hold times; scale out with more processes instead.
    """
    import sys
    from contextlib import asynccontextmanager

    threads = int(os.environ.get("STS_THREADS", "4"))
    sys.setswitchinterval(float(os.environ.get("STS_SWITCH_INTERVAL", "0.0005")))
    app = create_app(open_service(Settings.from_env()))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app.router.lifespan_context = lifespan
    return app
