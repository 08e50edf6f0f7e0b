"""ErrorDetail for failures the framework answers before an operation runs under
/prepaidutility/v3: an unknown path, a wrong method, a body over the size limit or not UTF-8.  The
app renders every such error through `app.state.error_renderers[PREFIX]` (`sts.server.app`);
this is that renderer.  The status is kept where HTTP defines it (401, 404, 405, 413); any
other client error becomes the interface's 400 FORMAT_ERROR.  The /v1 error body
`{code, message, field?}` is the `detailMessage`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.routing import Match

from sts.electrum.http import OPERATIONS, PREFIX, InterfaceRoute
from sts.electrum.models import ErrorDetail, ErrorType, RequestType
from sts.electrum.steps import router

# the collection a path starts with -> the request type its errors report
COLLECTIONS: dict[str, RequestType] = {
    "meterLookups": RequestType.METER_LOOKUP_REQUEST,
    "tokenPurchases": RequestType.TOKEN_PURCHASE_REQUEST,
    "tokenReprints": RequestType.TOKEN_REPRINT_REQUEST,
    "keyChangeTokenRequests": RequestType.KEY_CHANGE_TOKEN_REQUEST,
    "faultReports": RequestType.FAULT_REPORT_REQUEST,
    "events": RequestType.NOTIFY_TOKEN_PURCHASE,
}
# HTTP status -> (ErrorType, errorMessage); statuses not listed: 400 or 500 below
STATUSES: dict[int, tuple[ErrorType, str]] = {
    401: (ErrorType.INVALID_MERCHANT, "Not authenticated"),
    404: (ErrorType.FUNCTION_NOT_SUPPORTED, "No such operation"),
    405: (ErrorType.FUNCTION_NOT_SUPPORTED, "Method not allowed"),
    413: (ErrorType.FORMAT_ERROR, "Body too large"),
}
ID_CHARS = 64  # ids are at most 64 characters: a longer path segment is not echoed in full


def _operation(request: Request) -> tuple[RequestType, str, str | None]:
    """(request type, message id, original id) of the operation a request's path names."""
    for route in router.routes:  # the interface's own routes (full paths)
        if not isinstance(route, InterfaceRoute):
            continue
        match, child = route.matches(request.scope)
        if match is not Match.NONE:
            request_type, id_param, original_param = OPERATIONS[str(route.operation_id)]
            params: dict[str, Any] = child.get("path_params", {})
            original = params.get(original_param) if original_param else None
            return (request_type, str(params.get(id_param, ""))[:ID_CHARS],
                    None if original is None else str(original)[:ID_CHARS])
    parts = [p for p in request.url.path[len(PREFIX):].split("/") if p]
    request_type = COLLECTIONS.get(parts[0] if parts else "", RequestType.METER_LOOKUP_REQUEST)
    return request_type, (parts[1] if len(parts) > 1 else "")[:ID_CHARS], None


def render(request: Request, status: int, body: dict[str, Any]) -> Response:
    if status in STATUSES:
        error_type, short = STATUSES[status]
    elif status < 500:
        status, error_type, short = 400, ErrorType.FORMAT_ERROR, "Format error"
    else:
        status, error_type, short = 500, ErrorType.GENERAL_ERROR, "General error"
    request_type, message_id, original_id = _operation(request)
    detail = ErrorDetail.model_validate({
        "errorType": error_type, "errorMessage": short, "requestType": request_type,
        "id": message_id, "originalId": original_id, "detailMessage": body})
    headers = {"WWW-Authenticate": 'Basic realm="prepaidutility"'} if status == 401 else None
    return JSONResponse(detail.dump(), status_code=status, headers=headers)
