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
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.codec.pan import printed_number
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


def _sale(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    """A sale's own page in the back office: what was sold, to whom, by whom, and its state;
    the reversal form when it may still be reversed (the row action of the reversals list)."""
    web = web_of(request)
    pid = request.path_params.get("purchase_id") or ctx.get("form", {}).get("purchase_id", "")
    if not pid and ctx.get("error") is not None:  # refused before a sale was found
        return web.render(request, "error.html", op, status=status,
                          title=N_("No such sale"), message=ctx["error"])
    try:
        sale = web.service.get_purchase(pid, web.caller(op))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("No such sale"), message=exc)
    receipt = sale.get("receipt", {})
    return render(request, web, op, "admin/sale.html", status=status, sale=sale,
                  receipt=receipt, drn=printed_number(receipt.get("meter", {}).get("pan", "")), **ctx)


@router.get("/sales/{purchase_id}")
def sale_page(request: Request, op: Supervisor, purchase_id: str) -> Response:
    return _sale(request, op)


@action(router, "/admin/reversals", _sale,
        lambda form: "/sales/" + quote(form.get("purchase_id", ""), safe=""),
        permission="reverse")
def reverse(web: Web, op: Operator, form: dict[str, str]) -> str:
    """Reverse the sale named by its purchase id or receipt number (another vendor's sale is
    not found); the page then shows that sale (its id written into the form for the way
    back)."""
    pid = form.get("purchase_id", "")
    if not pid and form.get("receipt_no"):
        pid = form["purchase_id"] = web.service.sale_by_receipt(form["receipt_no"],
                                                                web.caller(op))
    web.service.reverse(pid, form.get("reason", ""), web.caller(op))
    return "reversed"
