"""The composition root: the one ASGI app `sts serve` runs.  It opens the service and mounts
every face on it: the /v1 REST API (`sts.server.v1`, `sts.server.deliveries`), the web pages
(`sts.web`), Electrum's interface (`sts.electrum`) and XMLVend (`sts.xmlvend`).  A new face is a
package with a `mount(app, service)`; it registers its error renderer for its path prefix
(`sts.http.responses`) and calls the service's use cases only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sts.electrum.http import PREFIX as ELECTRUM_PREFIX
from sts.errors import StsError
from sts.http.errors import api_error, http_error, validation_error
from sts.http.responses import BodyLimit, NoStore, error_response
from sts.http.tls import StrictTransport
from sts.server.deliveries import delivery_router
from sts.server.dependencies import plain_params
from sts.server.health import mount as mount_health
from sts.server.logs import RequestLog
from sts.server.metrics import mount as mount_metrics
from sts.server.metrics import scrape_token_from_env
from sts.server.payments import payment_router
from sts.server.v1 import v1_router
from sts.vending import metrics
from sts.vending.config import DEFAULT_MAX_BODY, Settings, open_service
from sts.vending.service import VendingService

log = logging.getLogger("sts.vending")


def create_app(service: VendingService, *, max_body: int = DEFAULT_MAX_BODY,
               metrics_token: str | None = None) -> FastAPI:
    """The app; `metrics_token` is the /metrics scrape token (None: from the environment,
    `sts.server.metrics`)."""
    app = FastAPI(title="STS vending server", version="1", docs_url=None, redoc_url=None,
                  description="Prepaid token vending (IEC 62055-41), Electrum-style JSON API. "
                  "Every error is `{code, message, field?}`; limits: docs/vending.md.")
    app.state.service = service
    app.state.error_renderers = {}
    app.add_middleware(BodyLimit, limit=max_body)
    # answers of /v1 and Electrum carry tokens and customer data: never cached (issue 17)
    app.add_middleware(NoStore, prefixes=("/v1/", ELECTRUM_PREFIX))
    app.add_middleware(StrictTransport)  # HSTS on answers over TLS: sts.http.tls
    # outermost: every answer carries its X-Request-ID; one log line per request (sts.server.logs)
    app.add_middleware(RequestLog)

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
        # 503: busy or a part briefly away; the same request may be sent again shortly
        return error_response(req, status, body, {"Retry-After": "1"} if status == 503 else None)

    @app.exception_handler(Exception)
    async def _error(req: Request, exc: Exception) -> Response:
        status, body = api_error(exc)
        if status >= 500:
            log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        return error_response(req, status, body)

    mount_health(app, service)  # /healthz, /readyz: sts.server.health
    from sts.server.docs import mount as mount_docs  # Swagger UI from a package, no CDN

    mount_docs(app)

    mount_metrics(app, service, metrics_token or scrape_token_from_env())  # /metrics
    plain = [Depends(plain_params)]  # no control characters in query strings and paths
    app.include_router(v1_router(service), dependencies=plain)  # /v1: sts.server.v1
    app.include_router(delivery_router(service), dependencies=plain)  # deliveries, resends
    app.include_router(payment_router(service), dependencies=plain)  # /v1/payments

    from sts.web import mount as mount_web  # the web pages (sign-in, POS, back office, ...)

    mount_web(app, service)

    from sts.electrum.routes import mount as mount_electrum

    mount_electrum(app)  # Electrum Prepaid Utility Service Interface v3: /prepaidutility/v3
    from sts.xmlvend import mount as mount_xmlvend  # XMLVend 2.1 (SOAP): /xmlvend

    mount_xmlvend(app, service)

    from sts.payments import mount as mount_payments

    mount_payments(app, service)  # mobile money: /pay/c2b/..., /pay/stk/callback, /ussd
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
    service = open_service(settings)
    app = create_app(service, max_body=settings.max_body)
    metrics.watch_pool(service.db.engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # this worker's live gauges go
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    app.router.lifespan_context = lifespan
    return app
