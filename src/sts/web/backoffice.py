"""The back office (administrator; supervisor for reversals): the dashboard, meters, customers,
tariffs, supply groups and reversals.  Vendors and floats are in backoffice_vendors, operators
and API keys in backoffice_people; all are built on the mechanism in office.

Every change goes through the registry or a vending module acting as the signed-in operator,
so it is audited under their name.  After a change the page redirects (303) to what changed,
so a refresh never repeats it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError, StsError
from sts.vending import reports
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.registry import catalogue
from sts.web.common import Web, drn_of, meter_number, need, typed_amount, web_of
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


# --- meters -----------------------------------------------------------------------------


def _meters(request: Request, web: Web) -> dict[str, Any]:
    q = request.query_params.get("q", "")
    return {"q": q, "meters": catalogue.search_meters(web.service.db, q),
            "choices": catalogue.choices(web.service.db)}


show_meters = list_page(router, "/admin/meters", "admin/meters.html", _meters,
                        endpoint="meters_page")


def _to_meter(form: dict[str, str]) -> str:
    return f"/admin/meters?q={form.get('meter', '')}"


@action(router, "/admin/meters", show_meters, "/admin/meters")
def meter_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    pan = meter_number(form.get("meter"))
    ti = form.get("ti", "1").strip() or "1"
    if not ti.isdigit():
        raise InputError("the tariff index is a number 0-99", field="ti")
    web.registry(op).add_meter(pan, sgc=form.get("sgc", ""), tariff=form.get("tariff", ""),
                               ti=int(ti), customer=form.get("customer") or None)
    return "meter-added"


@action(router, "/admin/meters/status", show_meters, _to_meter)
def meter_status(web: Web, op: Operator, form: dict[str, str]) -> str:
    pan = meter_number(form.get("meter"))
    block = form.get("action") == "block"
    reason = form.get("reason", "").strip()
    if block and len(reason) < 3:
        raise InputError("give the reason for blocking (at least 3 characters)", field="reason")
    web.registry(op).set_meter_status(pan, "blocked" if block else "active", reason)
    return "meter-blocked" if block else "meter-unblocked"


@action(router, "/admin/meters/tariff", show_meters, _to_meter)
def meter_tariff(web: Web, op: Operator, form: dict[str, str]) -> str:
    catalogue.set_meter_tariff(web.registry(op), meter_number(form.get("meter")),
                               form.get("tariff", ""))
    return "meter-tariff"


# --- customers --------------------------------------------------------------------------


show_customers = list_page(
    router, "/admin/customers", "admin/customers.html",
    lambda request, web: {"customers": catalogue.list_customers(web.service.db)},
    endpoint="customers_page")


@action(router, "/admin/customers", show_customers, "/admin/customers")
def customer_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    if not form.get("account_no", "").strip() or not form.get("name", "").strip():
        raise InputError("give the account number and the name", field="account_no")
    web.registry(op).add_customer(form["account_no"].strip(), form["name"].strip(),
                                  address=form.get("address", "").strip(),
                                  phone=form.get("phone", "").strip(),
                                  debt=typed_amount(web, op, form.get("debt") or "0", "debt",
                                                    N_("the opening debt")))
    return "customer-added"


# --- tariffs ----------------------------------------------------------------------------


show_tariffs = list_page(
    router, "/admin/tariffs", "admin/tariffs.html",
    lambda request, web: {"tariffs": catalogue.list_tariffs(web.service.db)},
    endpoint="tariffs_page")


def _terms(form: dict[str, str]) -> dict[str, Any]:
    pct = form.get("vat_percent", "0").strip() or "0"
    try:
        vat = str(Decimal(pct) / 100)
    except ArithmeticError:
        raise InputError("VAT is a percentage, e.g. 15", field="vat_percent") from None
    return {"blocks": catalogue.parse_blocks(form.get("blocks", "")), "vat_rate": vat,
            "fixed_monthly": form.get("fixed_monthly", "0").strip() or "0",
            "debt_share": form.get("debt_share", "0").strip() or "0",
            "free_units": form.get("free_units", "0").strip() or "0",
            "min_amount": form.get("min_amount", "0").strip() or "0",
            "max_amount": form.get("max_amount", "").strip() or None,
            "description": form.get("description", "").strip()}


@action(router, "/admin/tariffs", show_tariffs, "/admin/tariffs")
def tariff_save(web: Web, op: Operator, form: dict[str, str]) -> str:
    name = form.get("name", "").strip()
    if not name:
        raise InputError("give the tariff a name", field="name")
    terms = _terms(form)
    if form.get("existing"):
        catalogue.update_tariff(web.registry(op), name, **terms)
        return "tariff-updated"
    web.registry(op).add_tariff(name, **terms)
    return "tariff-added"


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
            ctx["error"] = exc.message
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
