"""The back office (administrator; supervisor for reversals).

Every change goes through the registry or a vending module acting as the signed-in operator,
so it is audited under their name.  After a change the page redirects (303) to what changed,
so a refresh never repeats it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError, StsError
from sts.vending import catalogue, floats, operators, reports
from sts.vending.operators import Operator
from sts.web.common import Web, drn_of, meter_number, need, period, posted, redirect, web_of

router = APIRouter()
Admin = Annotated[Operator, Depends(need("admin"))]
AdminPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("admin"))]
Office = Annotated[Operator, Depends(need("admin", "supervisor"))]
Supervisor = Annotated[Operator, Depends(need("supervisor"))]
SupervisorPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("supervisor"))]

NOTICES = {
    "meter-added": "Meter registered.", "meter-blocked": "Meter blocked.",
    "meter-unblocked": "Meter unblocked.", "meter-tariff": "Meter moved to the new tariff.",
    "customer-added": "Customer added.", "tariff-added": "Tariff added.",
    "tariff-updated": "Tariff updated: the next sale uses the new prices.",
    "vendor-added": "Vendor added.", "vendor-authorised": "Vendor authorised for the SGC.",
    "topped-up": "Float topped up.", "operator-added": "Operator added.",
    "operator-disabled": "Operator disabled.", "operator-enabled": "Operator enabled.",
    "password-set": "Password set; the account is unlocked.", "key-revoked": "API key revoked.",
    "reversed": "Sale reversed: its tokens are cancelled and the float is refunded.",
}
SECTIONS = (("/admin/meters", "Meters"), ("/admin/customers", "Customers"),
            ("/admin/tariffs", "Tariffs"), ("/admin/vendors", "Vendors"),
            ("/admin/operators", "Operators & API keys"),
            ("/admin/supply-groups", "Supply groups"), ("/admin/reversals", "Reversals"))


def _page(request: Request, web: Web, op: Operator, name: str, *, status: int = 200,
          **ctx: Any) -> Response:
    ok = request.query_params.get("ok")
    ctx.setdefault("notice", NOTICES.get(ok or ""))
    ctx.setdefault("error", None)
    ctx.setdefault("form", {})
    sections = [s for s in SECTIONS if op.role == "admin" or s[0] == "/admin/reversals"]
    return web.render(request, name, op, status=status, sections=sections, **ctx)


def _change(request: Request, op: Operator, form: dict[str, str], page: str,
            show: Callable[..., Response], act: Callable[[], str]) -> Response:
    """Run a change; on success redirect to `page?ok=...`, else show the form again."""
    try:
        code = act()
    except StsError as exc:
        return show(request, op, status=exc.http_status, error=exc.message,
                    error_field=exc.field, form=form)
    sep = "&" if "?" in page else "?"
    return redirect(f"{page}{sep}ok={code}")


# --- dashboard --------------------------------------------------------------------------


@router.get("/admin")
def dashboard(request: Request, op: Office) -> Response:
    web = web_of(request)
    today = datetime.combine(web.now().date(), datetime.min.time())
    day = reports.sales(web.service.db, today, today + timedelta(days=1), "vendor")
    return _page(request, web, op, "admin/dashboard.html", day=day,
                 vendors=catalogue.list_vendors(web.service.db),
                 due=len(reports.key_change_due(web.service.db)))


# --- meters -----------------------------------------------------------------------------


def _meters(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    q = request.query_params.get("q", "")
    return _page(request, web, op, "admin/meters.html", status=status, q=q,
                 meters=catalogue.search_meters(web.service.db, q),
                 choices=catalogue.choices(web.service.db), **ctx)


@router.get("/admin/meters")
def meters_page(request: Request, op: Admin) -> Response:
    return _meters(request, op)


@router.post("/admin/meters")
def meter_add(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        pan = meter_number(form.get("meter"))
        ti = form.get("ti", "1").strip() or "1"
        if not ti.isdigit():
            raise InputError("the tariff index is a number 0-99", field="ti")
        web.registry(op).add_meter(pan, sgc=form.get("sgc", ""), tariff=form.get("tariff", ""),
                                   ti=int(ti), customer=form.get("customer") or None)
        return "meter-added"

    return _change(request, op, form, "/admin/meters", _meters, act)


@router.post("/admin/meters/status")
def meter_status(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        pan = meter_number(form.get("meter"))
        block = form.get("action") == "block"
        reason = form.get("reason", "").strip()
        if block and len(reason) < 3:
            raise InputError("give the reason for blocking (at least 3 characters)",
                             field="reason")
        web.registry(op).set_meter_status(pan, "blocked" if block else "active", reason)
        return "meter-blocked" if block else "meter-unblocked"

    return _change(request, op, form, f"/admin/meters?q={form.get('meter', '')}", _meters, act)


@router.post("/admin/meters/tariff")
def meter_tariff(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        catalogue.set_meter_tariff(web.registry(op), meter_number(form.get("meter")),
                                   form.get("tariff", ""))
        return "meter-tariff"

    return _change(request, op, form, f"/admin/meters?q={form.get('meter', '')}", _meters, act)


# --- customers --------------------------------------------------------------------------


def _customers(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    return _page(request, web, op, "admin/customers.html", status=status,
                 customers=catalogue.list_customers(web.service.db), **ctx)


@router.get("/admin/customers")
def customers_page(request: Request, op: Admin) -> Response:
    return _customers(request, op)


@router.post("/admin/customers")
def customer_add(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        if not form.get("account_no", "").strip() or not form.get("name", "").strip():
            raise InputError("give the account number and the name", field="account_no")
        web.registry(op).add_customer(form["account_no"].strip(), form["name"].strip(),
                                      address=form.get("address", "").strip(),
                                      phone=form.get("phone", "").strip(),
                                      debt=form.get("debt", "0").strip() or "0")
        return "customer-added"

    return _change(request, op, form, "/admin/customers", _customers, act)


# --- tariffs ----------------------------------------------------------------------------


def _tariffs(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    return _page(request, web, op, "admin/tariffs.html", status=status,
                 tariffs=catalogue.list_tariffs(web.service.db), **ctx)


@router.get("/admin/tariffs")
def tariffs_page(request: Request, op: Admin) -> Response:
    return _tariffs(request, op)


def _terms(form: dict[str, str]) -> dict[str, Any]:
    pct = form.get("vat_percent", "0").strip() or "0"
    try:
        from decimal import Decimal

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


@router.post("/admin/tariffs")
def tariff_save(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        name = form.get("name", "").strip()
        if not name:
            raise InputError("give the tariff a name", field="name")
        terms = _terms(form)
        if form.get("existing"):
            catalogue.update_tariff(web.registry(op), name, **terms)
            return "tariff-updated"
        web.registry(op).add_tariff(name, **terms)
        return "tariff-added"

    return _change(request, op, form, "/admin/tariffs", _tariffs, act)


# --- vendors and floats -----------------------------------------------------------------


def _vendors(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    return _page(request, web, op, "admin/vendors.html", status=status,
                 vendors=catalogue.list_vendors(web.service.db),
                 choices=catalogue.choices(web.service.db), **ctx)


@router.get("/admin/vendors")
def vendors_page(request: Request, op: Admin) -> Response:
    return _vendors(request, op)


@router.post("/admin/vendors")
def vendor_add(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        name = form.get("name", "").strip()
        if not name:
            raise InputError("give the vendor's name", field="name")
        sgc = form.get("sgc", "")
        web.registry(op).add_vendor(name, address=form.get("address", "").strip(),
                                    sgcs=[sgc] if sgc else [])
        return "vendor-added"

    return _change(request, op, form, "/admin/vendors", _vendors, act)


@router.post("/admin/vendors/authorise")
def vendor_authorise(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        web.registry(op).authorise_vendor(form.get("vendor", ""), form.get("sgc", ""))
        return "vendor-authorised"

    return _change(request, op, form, "/admin/vendors", _vendors, act)


@router.post("/admin/vendors/top-up")
def vendor_top_up(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        floats.top_up(web.registry(op), form.get("vendor", ""), form.get("amount", "").strip(),
                      form.get("reference", ""))
        return "topped-up"

    return _change(request, op, form, "/admin/vendors", _vendors, act)


@router.get("/admin/vendors/statement")
def vendor_statement(request: Request, op: Office, vendor: str) -> Response:
    web = web_of(request)
    try:
        start, end = period(request, web, days=7)
        st = floats.statement(web.service.db, vendor, start, end)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title="Statement", message=exc.message)
    if request.query_params.get("format") == "csv":
        from sts.web.reports import csv_response

        return csv_response(reports.to_csv(st["lines"]), f"statement-{vendor}.csv")
    return _page(request, web, op, "admin/statement.html", st=st,
                 start=start.date().isoformat(),
                 end=(end - timedelta(days=1)).date().isoformat())


# --- operators and API keys -------------------------------------------------------------


def _operators(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    return _page(request, web, op, "admin/operators.html", status=status,
                 operators=operators.list_operators(web.service.db),
                 keys=catalogue.list_api_keys(web.service.db),
                 choices=catalogue.choices(web.service.db), **ctx)


@router.get("/admin/operators")
def operators_page(request: Request, op: Admin) -> Response:
    return _operators(request, op)


@router.post("/admin/operators")
def operator_add(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        operators.add_operator(web.registry(op), form.get("username", "").strip(),
                               form.get("role", ""), form.get("password", ""),
                               name=form.get("name", "").strip(),
                               vendor=form.get("vendor") or None)
        return "operator-added"

    return _change(request, op, form, "/admin/operators", _operators, act)


@router.post("/admin/operators/state")
def operator_state(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        username = form.get("username", "")
        if username == op.username:
            raise InputError("you cannot change your own account here", field="username")
        if form.get("action") == "password":
            operators.set_password(web.registry(op), username, form.get("password", ""))
            return "password-set"
        enable = form.get("action") == "enable"
        operators.set_active(web.registry(op), username, enable)
        return "operator-enabled" if enable else "operator-disabled"

    return _change(request, op, form, "/admin/operators", _operators, act)


@router.post("/admin/api-keys")
def api_key_add(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)
    try:
        key = web.registry(op).add_api_key(form.get("role", ""),
                                           label=form.get("label", "").strip(),
                                           vendor=form.get("vendor") or None)
    except StsError as exc:
        return _operators(request, op, status=exc.http_status, error=exc.message, form=form)
    return _operators(request, op, new_key=key)


@router.post("/admin/api-keys/revoke")
def api_key_revoke(request: Request, posted_: AdminPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        web.registry(op).revoke_api_key(form.get("prefix", ""))
        return "key-revoked"

    return _change(request, op, form, "/admin/operators", _operators, act)


# --- supply groups ----------------------------------------------------------------------


@router.get("/admin/supply-groups")
def sgcs_page(request: Request, op: Admin) -> Response:
    web = web_of(request)
    return _page(request, web, op, "admin/sgcs.html", groups=catalogue.list_sgcs(web.service.db),
                 due=reports.key_change_due(web.service.db))


# --- reversals (supervisor) -------------------------------------------------------------


def _reversals(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    meter = request.query_params.get("meter", "") or ctx.get("form", {}).get("meter", "")
    sales: list[dict[str, Any]] = []
    if meter and "error" not in ctx:
        try:
            pan = meter_number(meter)
            sales = catalogue.sales_of_meter(web.service.db, pan)
            ctx["drn"] = drn_of(pan)
        except StsError as exc:
            ctx["error"] = exc.message
    return _page(request, web, op, "admin/reversals.html", status=status, meter=meter,
                 sales=sales, **ctx)


@router.get("/admin/reversals")
def reversals_page(request: Request, op: Supervisor) -> Response:
    return _reversals(request, op)


@router.post("/admin/reversals")
def reverse(request: Request, posted_: SupervisorPost) -> Response:
    op, form = posted_
    web = web_of(request)

    def act() -> str:
        pid = form.get("purchase_id", "")
        if not pid and form.get("receipt_no"):
            pid = catalogue.sale_by_receipt(web.service.db, form["receipt_no"])
        web.service.reverse(pid, form.get("reason", ""), web.caller(op))
        return "reversed"

    return _change(request, op, form, f"/admin/reversals?meter={form.get('meter', '')}",
                   _reversals, act)
