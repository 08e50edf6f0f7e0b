"""The REST face of the vending service (FastAPI; OpenAPI at /docs).

Shaped after Electrum's prepaid-utility API: the client names each purchase with its own UUID
in the path; sending it again returns the stored answer (200) and never a second token; the
same id with another body is 409 DUPLICATE_REQUEST.  Every /v1 endpoint needs
`Authorization: Bearer <api key>`.  Errors are always `{code, message, field?}`: the handlers
below map every exception once (`sts.vending.errors`), and a body over the size limit is
refused before it is parsed (`BodyLimit`).  Models: `sts.vending.schemas`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sts.delivery.api import delivery_router
from sts.errors import InputError, StsError
from sts.vending import audit
from sts.vending.auth import Caller, authenticate, bearer_key
from sts.vending.config import DEFAULT_MAX_BODY, Settings, open_service
from sts.vending.errors import (
    api_error,
    body_not_utf8,
    body_too_large,
    http_error,
    validation_error,
)
from sts.vending.schemas import (
    AMOUNT_MAX,
    METER_MAX,
    REQUEST_ID_MAX,
    AuditOut,
    EngineeringBody,
    EngineeringOut,
    ErrorBody,
    LookupOut,
    PurchaseBody,
    PurchaseOut,
    ReprintBody,
    ReprintOut,
    ReversalBody,
    ReversalOut,
    TrialOut,
    VerifyBody,
    VerifyOut,
)
from sts.vending.service import VendingService

log = logging.getLogger("sts.vending")

# A face mounted on this app with an error model of its own (Electrum's, the web pages') adds
# its path prefix here: `app.state.error_renderers["/prefix"] = render`; every error under that
# prefix, the framework's and the middleware's too, is then `render(request, status, body)`
# with `body` in the one shape.  Everything else answers the one shape.
ErrorRenderer = Callable[[Request, int, dict[str, Any]], Response]


def error_response(request: Request, status: int, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> Response:
    renderers: dict[str, ErrorRenderer] = getattr(request.app.state, "error_renderers", {})
    for prefix, render in renderers.items():
        if request.url.path.startswith(prefix):
            return render(request, status, body)
    return JSONResponse(body, status_code=status, headers=headers)


def _dump(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_none=True, by_alias=True)


class BearerAuth(HTTPBearer):
    """`Authorization: Bearer <api key>`, documented as the HTTP bearer scheme; a missing or
    malformed header is NOT_AUTHENTICATED in the one error shape."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials:  # type: ignore[override]
        return HTTPAuthorizationCredentials(
            scheme="Bearer", credentials=bearer_key(request.headers.get("authorization")))


bearer_scheme = BearerAuth(scheme_name="bearerAuth", bearerFormat="stsk_...",
                           description="an API key from `sts admin apikey add ROLE`")


def _bearer(cred: Annotated[HTTPAuthorizationCredentials, Depends(bearer_scheme)]) -> str:
    """The API key, checked for form only; the service looks it up (purchases)."""
    return cred.credentials


BearerKey = Annotated[str, Depends(_bearer)]


def _query_names(dependant: Any) -> set[str]:
    """The query parameters an operation declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _known_query(request: Request) -> None:
    """Strict query strings, as bodies are strict: a parameter the operation does not declare
    is refused naming it (a misspelt `amuont` must not silently mean "no amount")."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    for name in request.query_params:
        if name not in known:
            raise InputError(f"unknown query parameter {name[:40]!r}; this operation takes "
                             f"{', '.join(sorted(known)) or 'none'}", field=name[:40] or "query")


def _caller(request: Request, key: BearerKey,
            _query: Annotated[None, Depends(_known_query)] = None) -> Caller:
    service: VendingService = request.app.state.service
    with service.db.read() as conn:
        return authenticate(conn, key)


Auth = Annotated[Caller, Depends(_caller)]

PurchaseId = Annotated[str, Path(max_length=REQUEST_ID_MAX,
                                 description="the client's id for the purchase (a UUID)")]
RequestId = Annotated[str, Path(max_length=REQUEST_ID_MAX,
                                description="the client's id for the request (a UUID)")]
MeterPath = Annotated[str, Path(max_length=METER_MAX, description="the meter number")]
AmountQuery = Annotated[str | None, Query(max_length=AMOUNT_MAX,
                                          description="quote this amount (decimal string)")]

_ERROR_TEXT = {
    401: "NOT_AUTHENTICATED: no, malformed, unknown or revoked API key",
    403: "NOT_AUTHORISED: the key's role or vendor may not do this",
    404: "UNKNOWN_METER, UNKNOWN_RECORD",
    409: "DUPLICATE_REQUEST, METER_BLOCKED, KEY_EXPIRED, INSUFFICIENT_FLOAT, "
         "KEY_CREDIT_LIMIT, REVERSAL_NOT_ALLOWED, METER_KEY_INVALID",
    413: "BODY_TOO_LARGE: the body is over the size limit",
    422: "INVALID_INPUT (shape, type, length, rule), INVALID_AMOUNT, INVALID_METER_NUMBER, "
         "AMOUNT_TOO_LOW, AMOUNT_TOO_HIGH, INVALID_TOKEN, TOKEN_REJECTED",
    429: "RATE_LIMITED: too many lookups this minute",
    500: "SYSTEM_ERROR: a fault of the server (never caused by the request)",
    503: "UNAVAILABLE: the database is busy; retry the same request",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses of an operation (plus those of every one)."""
    every = (401, 413, 422, 500, 503)
    return {s: {"model": ErrorBody, "description": _ERROR_TEXT[s]}
            for s in sorted({*statuses, *every})}


def _ok(model: type[BaseModel], description: str, *, created: bool = False
        ) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": description}}
    if created:
        out[201] = {"model": model, "description": "created"}
        out[200] = {"model": model, "description": "a repeat: the stored answer"}
    return out


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, before anything parses it.

    The declared Content-Length is checked first; the body is then read and counted (it may
    come chunked, or longer than declared) and handed on only when it is within the limit.
    A JSON body must be UTF-8 (RFC 8259): the JSON parser would also take UTF-16 and UTF-32.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _is_json(scope) and not _utf8(body):
            await self._reply(scope, receive, send, 422, body_not_utf8())
            return
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._reply(scope, receive, send, 413, body_too_large(self.limit),
                          {"connection": "close"})

    @staticmethod
    async def _reply(scope: Scope, receive: Receive, send: Send, status: int,
                     body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        response = error_response(Request(scope, receive), status, body, headers)
        await response(scope, receive, send)


def _utf8(body: bytes) -> bool:
    """UTF-8 JSON text: valid UTF-8 and no NUL byte (a NUL is never valid JSON in UTF-8, and is
    how UTF-16 or UTF-32 text, which the JSON parser would guess and accept, gives itself away)."""
    if b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media: bytes = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def create_app(service: VendingService, *, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    app = FastAPI(title="STS vending server", version="1",
                  description="Prepaid token vending (IEC 62055-41), Electrum-style JSON API. "
                  "Every error is `{code, message, field?}`; limits: docs/vending.md.")
    app.state.service = service
    app.state.error_renderers = {}
    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(req: Request, exc: RequestValidationError) -> Response:
        return error_response(req, 422, validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> Response:
        body = http_error(exc.status_code, exc.detail, exc.__cause__, req.method, req.url.path)
        status = 422 if exc.status_code == 400 else exc.status_code
        return error_response(req, status, body, exc.headers)

    @app.exception_handler(StsError)
    async def _refused(req: Request, exc: StsError) -> Response:
        status, body = api_error(exc)
        if status >= 500:
            log.error("request failed: %s [%s]", type(exc).__name__, exc.code)
        return error_response(req, status, body)

    @app.exception_handler(Exception)
    async def _error(req: Request, exc: Exception) -> Response:
        status, body = api_error(exc)
        if status >= 500:
            log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        return error_response(req, status, body)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/meters/{meter}", summary="Meter lookup (confirm customer)",
             response_model=None, responses=_ok(LookupOut, "the meter, its customer, tariff "
                                                "and an optional quote") | _errors(403, 404, 429))
    def lookup(meter: MeterPath, who: Auth, amount: AmountQuery = None) -> dict[str, Any]:
        return service.lookup(meter, who, amount)

    @app.post("/v1/purchases/{purchase_id}", status_code=201, summary="Purchase (idempotent)",
              response_model=None, responses=_ok(PurchaseOut, "the sale", created=True)
              | _errors(403, 404, 409))
    def purchase(purchase_id: PurchaseId, body: PurchaseBody, key: BearerKey) -> Response:
        # the hot path: the key is checked inside the sale's own transaction, and the answer
        # is the stored JSON text (what a repeat returns), so it is not serialised twice
        out, created = service.purchase_json(purchase_id, _dump(body), key)
        return Response(out, status_code=201 if created else 200,
                        media_type="application/json")

    @app.get("/v1/purchases/{purchase_id}", summary="The stored answer of a purchase",
             response_model=None, responses=_ok(PurchaseOut, "the stored answer and its status")
             | _errors(403, 404))
    def get_purchase(purchase_id: PurchaseId, who: Auth) -> dict[str, Any]:
        return service.get_purchase(purchase_id, who)

    @app.post("/v1/purchases/{purchase_id}/reversals", status_code=201,
              summary="Reverse a purchase whose tokens never reached the customer",
              response_model=None, responses=_ok(ReversalOut, "the reversal", created=True)
              | _errors(403, 404, 409))
    def reverse(purchase_id: PurchaseId, body: ReversalBody, who: Auth) -> JSONResponse:
        out, created = service.reverse(purchase_id, body.reason, who)
        return JSONResponse(out, status_code=201 if created else 200)

    @app.post("/v1/trials", summary="Trial purchase: the full answer, no token, nothing stored",
              response_model=None, responses=_ok(TrialOut, "the answer a sale would give")
              | _errors(403, 404, 409))
    def trial(body: PurchaseBody, who: Auth) -> dict[str, Any]:
        return service.trial(_dump(body), who)

    @app.post("/v1/reprints", summary="Reprint the last purchase of a meter, or a receipt",
              response_model=None, responses=_ok(ReprintOut, "the original answer again")
              | _errors(403, 404))
    def reprint(body: ReprintBody, who: Auth) -> dict[str, Any]:
        return service.reprint(_dump(body), who)

    @app.post("/v1/engineering/{request_id}", status_code=201, summary="Engineering tokens",
              response_model=None, responses=_ok(EngineeringOut, "the tokens", created=True)
              | _errors(403, 404, 409))
    def engineering(request_id: RequestId, body: EngineeringBody, who: Auth) -> JSONResponse:
        out, created = service.engineering(request_id, _dump(body), who)
        return JSONResponse(out, status_code=201 if created else 200)

    @app.post("/v1/tokens/verify", summary="Decode a token and say whether it was issued",
              response_model=None, responses=_ok(VerifyOut, "the decoded token and its issue")
              | _errors(403, 404))
    def verify(body: VerifyBody, who: Auth) -> dict[str, Any]:
        return service.verify_token(body.meter, body.token, who)

    # token delivery: GET /v1/deliveries, resend (sts.delivery.api)
    app.include_router(delivery_router(service))

    @app.get("/v1/audit/verify", summary="Check the audit and transaction hash chains",
             response_model=None, responses=_ok(AuditOut, "the verdict") | _errors(403))
    def audit_verify(who: Auth) -> dict[str, Any]:
        who.require("audit")
        return audit.verify(service.db).as_dict()

    from sts.web import mount as mount_web  # the web pages (sign-in, POS, back office, ...)

    mount_web(app, service)

    from sts.electrum.routes import mount as mount_electrum

    mount_electrum(app)  # Electrum Prepaid Utility Service Interface v3: /prepaidutility/v3
    from sts.xmlvend import mount as mount_xmlvend  # XMLVend 2.1 (SOAP): /xmlvend

    mount_xmlvend(app, service)
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
    settings = Settings.from_env()
    app = create_app(open_service(settings), max_body=settings.max_body)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app.router.lifespan_context = lifespan
    return app
