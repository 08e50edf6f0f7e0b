"""What every /v1 route depends on: the bearer API key, the caller it names (authenticated
through `sts.vending.access`), strict query strings, and the OpenAPI entries of its answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from sts.errors import InputError
from sts.server.schemas import (
    AMOUNT_MAX,
    METER_MAX,
    REQUEST_ID_MAX,
    ErrorBody,
)
from sts.vending.access.api_keys import authenticate, bearer_key
from sts.vending.access.policy import Caller
from sts.vending.service import VendingService
from sts.vending.text import check_text


def dump(body: BaseModel) -> dict[str, Any]:
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


def plain_params(request: Request) -> None:
    """Every query string and path parameter of /v1 follows the text rule
    (`sts.vending.text`): a control character is 422 INVALID_INPUT naming the parameter,
    before authentication or any database call.  Included by every /v1 router."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        check_text(name, "query")
        check_text(str(value), name)


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


def errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses of an operation (plus those of every one)."""
    every = (401, 413, 422, 500, 503)
    return {s: {"model": ErrorBody, "description": _ERROR_TEXT[s]}
            for s in sorted({*statuses, *every})}


def ok_doc(model: type[BaseModel], description: str, *, created: bool = False
        ) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": description}}
    if created:
        out[201] = {"model": model, "description": "created"}
        out[200] = {"model": model, "description": "a repeat: the stored answer"}
    return out


