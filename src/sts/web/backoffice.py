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

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending import reports
from sts.vending.access.operators import Operator
from sts.vending.registry import catalogue
from sts.web.common import Web, drn_of, meter_number, need, web_of
from sts.web.office import action, list_page, render

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
    """The sales of the meter asked for (or posted), unless the page is showing an error."""
    web = web_of(request)
    meter = request.query_params.get("meter", "") or ctx.get("form", {}).get("meter", "")
    sales: list[dict[str, Any]] = []
    if meter and "error" not in ctx:
        try:
            pan = meter_number(meter)
            sales = web.service.sales_of_meter(pan, web.caller(op))
            ctx["drn"] = drn_of(pan)
        except StsError as exc:
            ctx["error"] = exc
    return render(request, web, op, "admin/reversals.html", status=status, meter=meter,
                  sales=sales, **ctx)


@router.get("/admin/reversals")
def reversals_page(request: Request, op: Supervisor) -> Response:
    return _reversals(request, op)


@action(router, "/admin/reversals", _reversals,
        lambda form: f"/admin/reversals?meter={form.get('meter', '')}", permission="reverse")
def reverse(web: Web, op: Operator, form: dict[str, str]) -> str:
    pid = form.get("purchase_id", "")
    if not pid and form.get("receipt_no"):
        pid = web.service.sale_by_receipt(form["receipt_no"], web.caller(op))
    web.service.reverse(pid, form.get("reason", ""), web.caller(op))
    return "reversed"
