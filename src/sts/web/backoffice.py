"""The back office (administrator; supervisor for reversals): the dashboard, supply groups and
reversals (meters and customers are in registers).  Tariffs are in backoffice_tariffs, vendors
and floats in
backoffice_vendors, operators and API keys in backoffice_people; all are built on the
mechanism in office.

Every change goes through the registry or a vending module acting as the signed-in operator,
so it is audited under their name.  After a change the page redirects (303) to what changed,
so a refresh never repeats it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending import reports
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.registry import catalogue
from sts.vending.usecases import lists_office
from sts.web.common import Web, need, web_of
from sts.web.office import action, list_page, render
from sts.web.paging import params

router = APIRouter()
Supervisor = Annotated[Operator, Depends(need("reverse"))]


# --- dashboard --------------------------------------------------------------------------


def _dashboard(request: Request, web: Web) -> dict[str, Any]:
    today = datetime.combine(web.now().date(), datetime.min.time())
    return {"day": reports.sales(web.service.db, today, today + timedelta(days=1), "vendor"),
            "vendors": catalogue.list_vendors(web.service.db),
            "due": len(reports.key_change_due(web.service.db))}


list_page(router, "/admin", "admin/dashboard.html", _dashboard, permission="back_office",
          endpoint="dashboard")


# --- meters and customers: sts.web.registers (paged lists, each record's own page) ----------


# --- supply groups ----------------------------------------------------------------------


list_page(router, "/admin/supply-groups", "admin/sgcs.html",
          lambda request, web: {"groups": catalogue.list_sgcs(web.service.db),
                                "due": reports.key_change_due(web.service.db)},
          endpoint="sgcs_page")


# --- reversals (supervisor) -------------------------------------------------------------


def _reversals(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    """The sales the supervisor may reverse, a page at a time (searched by meter number or
    receipt: `?meter=` is read as the search too), unless the page is showing an error."""
    web = web_of(request)
    query = params(request)
    typed = query.pop("meter", "") or ctx.get("form", {}).get("meter", "")
    if typed and not query.get("q"):
        query["q"] = typed
    try:
        page = lists_office.list_sales(web.service, web.caller(op), query)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Not accepted"), message=exc)
    return render(request, web, op, "admin/reversals.html", status=status, page=page, **ctx)


@router.get("/admin/reversals")
def reversals_page(request: Request, op: Supervisor) -> Response:
    return _reversals(request, op)


@action(router, "/admin/reversals", _reversals,
        lambda form: "/admin/reversals?" + urlencode({"q": form.get("meter", "")}),
        permission="reverse")
def reverse(web: Web, op: Operator, form: dict[str, str]) -> str:
    pid = form.get("purchase_id", "")
    if not pid and form.get("receipt_no"):
        pid = web.service.sale_by_receipt(form["receipt_no"], web.caller(op))
    web.service.reverse(pid, form.get("reason", ""), web.caller(op))
    return "reversed"
