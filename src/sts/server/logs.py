"""One log line per request, and logs an operator can ship (`sts serve --log-format json`).

`RequestLog`, the outermost middleware, gives every HTTP request its id (the client's
`X-Request-ID` when well-formed, else a new one: `sts.vending.observe`), answers it in the
`X-Request-ID` header of every response (errors included), counts the request
(`sts.vending.metrics`) and, when the `sts.access` logger is enabled for INFO (JSON logs),
writes one line: request id, face, method, path (never the query string), status, outcome,
caller (an API key's id, role and label, or an operator's user name: never a secret), purchase
id, error code and duration.  An exception nothing else handled is answered here with the
one error shape (500 SYSTEM_ERROR) so that it, too, carries its request id.

`JsonFormatter` makes every log record one JSON object per line; `log_config` is the logging
set-up `sts serve` hands uvicorn (and so each worker process).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sts.http.errors import api_error
from sts.http.responses import error_response
from sts.vending import metrics, observe

access_log = logging.getLogger("sts.access")
error_log = logging.getLogger("sts.vending")
LOG_FORMATS = ("text", "json")

# path prefix -> face (the first that matches); everything else is the web pages
FACES: tuple[tuple[str, str], ...] = (
    ("/v1/", "v1"), ("/prepaidutility/", "electrum"), ("/xmlvend", "xmlvend"),
    ("/pay/", "payments"), ("/ussd", "payments"), ("/metrics", "ops"), ("/healthz", "ops"),
    ("/readyz", "ops"),
)


def face_of(path: str) -> str:
    for prefix, face in FACES:
        if path.startswith(prefix):
            return face
    return "web"


def outcome(info: observe.RequestInfo, status: int) -> str:
    if info.error_code or status >= 400:
        return info.error_code or f"HTTP_{status}"
    if info.sales:
        return "sold"
    return "ok"


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                header = value.decode("latin-1")
                break
        path = scope.get("path", "")
        info = observe.RequestInfo(observe.request_id_from(header), face_of(path))
        rid_header = (b"x-request-id", info.request_id.encode())
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, rid_header]}
            await send(message)

        token = observe.enter(info)
        begun = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error_log.error("request %s failed: %s", info.request_id, type(exc).__name__,
                            exc_info=exc)
            if started:
                raise
            code, body = api_error(exc)
            await error_response(Request(scope, receive), code, body)(scope, receive,
                                                                     send_with_id)
        finally:
            seconds = time.perf_counter() - begun
            observe.leave(token)
            metrics.request_done(info, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %s", scope.get("method", ""), path[:200], status,
                                extra={"sts": line(info, scope, status, seconds)})


def line(info: observe.RequestInfo, scope: Scope, status: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "request_id": info.request_id, "face": info.face, "method": scope.get("method", ""),
        "path": scope.get("path", "")[:200], "status": status,
        "outcome": outcome(info, status), "duration_ms": round(seconds * 1000, 2)}
    if info.caller:
        out["caller"] = info.caller
    if info.purchase_id:
        out["purchase_id"] = info.purchase_id
    if info.error_code:
        out["error_code"] = info.error_code
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the request's fields
    (`extra={"sts": {...}}`) and an exception's type and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        fields = getattr(record, "sts", None)
        if isinstance(fields, dict):
            out.update(fields)
        rid = observe.request_id()
        if rid is not None and "request_id" not in out:
            out["request_id"] = rid
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's logging set-up for `--log-format`: None keeps uvicorn's own (text); json
    sends every logger through `JsonFormatter` and the one line per request (`sts.access`)
    replaces uvicorn's access log."""
    if log_format == "text":
        return None
    lvl = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "sts.server.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": lvl, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "sts.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["json"], "level": lvl},
    }
