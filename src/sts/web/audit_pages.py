"""The audit log viewer (auditors, administrators): entries filtered by actor, action, record
and dates, each with its place in the hash chain and whether its link checks out, a page at a
time; the filtered entries as CSV.  The rules are `sts.vending.usecases.audit_log`'s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from sts.errors import StsError
from sts.vending import reports
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.usecases import audit_log
from sts.web.common import SECURITY_HEADERS, need, web_of
from sts.web.paging import params

router = APIRouter()
Auditor = Annotated[Operator, Depends(need("audit_log"))]
CHUNK = 500


@router.get("/audit")
def audit_page(request: Request, op: Auditor) -> Response:
    web = web_of(request)
    try:
        page, flt = audit_log.entries(web.service, web.caller(op), params(request))
    except StsError as exc:
        return web.render(request, "audit.html", op, status=exc.http_status, page=None,
                          flt=dict(params(request)), error=exc,
                          error_field=exc.field)
    return web.render(request, "audit.html", op, page=page, flt=flt.as_query(), error=None,
                      error_field=None)


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV text a chunk at a time: the header once, then the rows (`reports.to_csv` rules)."""
    yield reports.to_csv([], audit_log.COLUMNS)
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield reports.to_csv(batch, audit_log.COLUMNS).split("\r\n", 1)[1]
            batch = []
    if batch:
        yield reports.to_csv(batch, audit_log.COLUMNS).split("\r\n", 1)[1]


@router.get("/audit.csv")
def audit_csv(request: Request, op: Auditor) -> Response:
    web = web_of(request)
    try:
        rows = audit_log.export(web.service, web.caller(op), params(request))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Not accepted"), message=exc)
    resp = StreamingResponse(_csv(rows), media_type="text/csv; charset=utf-8")
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return resp
