"""HTTP plumbing of the interface: Basic (or mutual-TLS certificate) authentication,
ErrorDetail for every failure (including request validation), and the journal row written for every request.

`InterfaceRoute` wraps each operation: it reads the raw JSON once (the envelope is echoed from
it), authenticates, runs the operation, turns any exception into the interface's error body
through the one mapping in `errors.py`, and journals the outcome.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from sts.electrum.errors import InterfaceError, error_detail, format_error
from sts.electrum.models import RequestType
from sts.errors import NotAuthenticated
from sts.http.tls import client_cert_sha256
from sts.vending import messages, text
from sts.vending.access import credentials
from sts.vending.access.credentials import BasicCaller
from sts.vending.service import VendingService

log = logging.getLogger("sts.electrum")

PREFIX = "/prepaidutility/v3"

# operationId -> (RequestType, path parameter naming this message, parameter naming the original)
OPERATIONS: dict[str, tuple[RequestType, str, str | None]] = {
    "createMeterLookup": (RequestType.METER_LOOKUP_REQUEST, "lookupId", None),
    "createTokenPurchaseRequest": (RequestType.TOKEN_PURCHASE_REQUEST, "purchaseId", None),
    "retryPurchaseRequest": (RequestType.TOKEN_PURCHASE_RETRY_REQUEST, "purchaseId",
                             "purchaseId"),
    "confirmTokenPurchase": (RequestType.CONFIRMATION_ADVICE, "confirmationId", "purchaseId"),
    "reverseTokenPurchase": (RequestType.REVERSAL_ADVICE, "reversalId", "purchaseId"),
    "trialTokenPurchaseRequest": (RequestType.TOKEN_PURCHASE_TRIAL_REQUEST, "trialId", None),
    "requestTokenReprint": (RequestType.TOKEN_REPRINT_REQUEST, "reprintId", None),
    "createKeyChangeTokenRequest": (RequestType.KEY_CHANGE_TOKEN_REQUEST, "requestId", None),
    # no RequestType of its own: the digest suggests CONFIRMATION_ADVICE
    "confirmKeyChange": (RequestType.CONFIRMATION_ADVICE, "confirmationId", "requestId"),
    "createFaultReport": (RequestType.FAULT_REPORT_REQUEST, "requestId", None),
    "notifyTokenPurchase": (RequestType.NOTIFY_TOKEN_PURCHASE, "purchaseId", "purchaseId"),
}


def service_of(request: Request) -> VendingService:
    svc: VendingService = request.app.state.service
    return svc


def basic_of(request: Request) -> BasicCaller:
    basic: BasicCaller = request.state.basic
    return basic


def raw_of(request: Request) -> dict[str, Any]:
    raw: dict[str, Any] = request.state.raw
    return raw


def _basic_credentials(header: str | None) -> tuple[str, str]:
    if not header:
        raise NotAuthenticated("HTTP Basic credentials are required", field="authorization")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise NotAuthenticated("use HTTP Basic authentication", field="authorization")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("malformed Basic credentials", field="authorization") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise NotAuthenticated("malformed Basic credentials", field="authorization")
    if text.bad_char(user) is not None or text.bad_char(password) is not None:
        raise NotAuthenticated("malformed Basic credentials: control characters",
                               field="authorization")
    return user, password


def authenticate(svc: VendingService, header: str | None,
                 cert_sha256: str | None = None) -> BasicCaller:
    """The caller: by HTTP Basic (checked against the client certificate when its credential
    is bound to one), or, without a Basic header, by the mutual-TLS certificate alone."""
    if not header and cert_sha256 is not None:
        with svc.db.read() as conn:
            return credentials.authenticate_certificate(conn, cert_sha256)
    user, password = _basic_credentials(header)
    with svc.db.read() as conn:
        return credentials.authenticate(conn, user, password, cert_sha256)


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _json_media(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def validation_error(exc: RequestValidationError, request: Request | None = None
                     ) -> InterfaceError:
    errs = list(exc.errors())
    first = errs[0] if errs else {}
    if request is not None and not _json_media(request):
        sent = request.headers.get("content-type")
        got = f"Content-Type {sent[:80]!r}" if sent else "no Content-Type"
        return format_error("body", f"the body must be JSON sent with Content-Type: "
                            f"application/json; the request had {got}")
    if first.get("type") == "json_invalid":
        return format_error("body", "the body is not valid JSON")
    field = _field(tuple(first.get("loc", ())))
    err = format_error(field, f"{field}: {first.get('msg', 'invalid')}")
    err.detail["errors"] = [{"field": _field(tuple(x.get("loc", ()))), "message": x.get("msg")}
                            for x in errs[:20]]
    return err


def _edge_refusal(params: dict[str, Any]) -> InterfaceError | None:
    """A FORMAT_ERROR for a path or query parameter that breaks the text rule
    (`sts.vending.text`); checked, with the body's strings, before authentication."""
    for name, value in params.items():
        char = text.bad_char(str(name)) or text.bad_char(str(value))
        if char is not None:
            return format_error(str(name) if text.bad_char(str(name)) is None else "query",
                                text.message(str(name), char))
    return None


class InterfaceRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        request_type, id_param, original_param = OPERATIONS[str(self.operation_id)]
        operation = str(self.operation_id)

        async def handler(request: Request) -> Response:
            svc = service_of(request)
            params = dict(request.query_params) | dict(request.path_params)
            message_id = str(params.get(id_param, ""))
            original_id = str(params[original_param]) if original_param in params else None
            body = await request.body()
            refused = _edge_refusal(params)
            try:
                raw = json.loads(body) if body else {}
            except RecursionError:
                raw, refused = {}, refused or format_error(
                    "body", "the body's JSON is nested too deeply")
            except ValueError:
                raw = {}
            bad = text.first_bad(raw)
            if bad is not None and refused is None:
                refused = format_error(bad[0], text.message(*bad))
            if refused is not None:  # journal what can be stored, never the raw text
                raw, message_id = {}, text.printable(message_id)
                original_id = None if original_id is None else text.printable(original_id)
            request.state.raw = raw if isinstance(raw, dict) else {}
            if operation in ("retryPurchaseRequest", "notifyTokenPurchase") and isinstance(
                    request.state.raw.get("id"), str):
                message_id = request.state.raw["id"]
            request.state.detail = ""
            basic: BasicCaller | None = None
            error_type: str | None = None
            try:
                if refused is not None:
                    raise refused
                basic = await run_in_threadpool(authenticate, svc,
                                                request.headers.get("authorization"),
                                                client_cert_sha256(request.scope))
                request.state.basic = basic
                response = await original(request)
            except Exception as exc:
                if isinstance(exc, RequestValidationError):
                    exc = validation_error(exc, request)
                status, err = error_detail(exc, request_type, message_id or "", original_id)
                error_type = err["errorType"]
                if status >= 500:
                    log.error("%s failed: %s", operation, type(exc).__name__, exc_info=exc)
                headers = ({"WWW-Authenticate": 'Basic realm="prepaidutility"'}
                           if status == 401 else None)
                response = JSONResponse(err, status_code=status, headers=headers)
                request.state.detail = str(err.get("detailMessage", ""))
            try:
                await run_in_threadpool(
                    messages.journal, svc.db, now=svc.now(), operation=operation,
                    message_id=message_id, ref_id=original_id,
                    username=basic.username if basic else _claimed_user(request),
                    institution_id=_institution(request.state.raw),
                    http_status=response.status_code, error_type=error_type,
                    detail=str(request.state.detail))
            except Exception as exc:  # the answer stands even if the journal write fails
                log.error("journal write failed: %s", type(exc).__name__, exc_info=exc)
            return response

        return handler


def _institution(raw: dict[str, Any]) -> str:
    try:
        return str(raw["originator"]["institution"]["id"])
    except (KeyError, TypeError):
        return ""


def _claimed_user(request: Request) -> str:
    """The username a refused request claimed (never its password), for the journal."""
    try:
        return _basic_credentials(request.headers.get("authorization"))[0][:64]
    except NotAuthenticated:
        return ""
