"""The registers and their records: the meter and customer lists (paged, sorted, searched on
the server: `sts.vending.usecases.lists`), a meter's page and a customer's page
(`sts.vending.usecases.records`), and the changes made on a meter's own page (move tariff,
block, unblock).

A meter's address is its number as printed, without spaces (`/meters/04100000012`); any form
a person types (spaces, dashes, the 18-digit MeterPAN) is accepted and redirected there.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.codec.pan import printed_number
from sts.errors import InputError, StsError
from sts.vending.access.operators import Operator
from sts.vending.access.policy import may
from sts.vending.i18n import N_
from sts.vending.registry import catalogue
from sts.vending.usecases import lists, records
from sts.web.common import Web, meter_number, need, redirect, typed_amount, web_of
from sts.web.office import action, render
from sts.web.paging import params

router = APIRouter()
Registers = Annotated[Operator, Depends(need("registers"))]
MeterReader = Annotated[Operator, Depends(need("meter_record"))]
CustomerReader = Annotated[Operator, Depends(need("customer_record"))]


def meter_href(pan: str) -> str:
    return f"/meters/{printed_number(pan)}"


def _refused(request: Request, web: Web, op: Operator, exc: StsError) -> Response:
    return web.render(request, "error.html", op, status=exc.http_status,
                      title=N_("Not found") if exc.http_status == 404 else N_("Not accepted"),
                      message=exc)


# --- meters -----------------------------------------------------------------------------


def _choices(web: Web) -> dict[str, list[str]]:
    return catalogue.choices(web.service.db)


def show_meters(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    try:
        page = lists.list_meters(web.service, web.caller(op), params(request))
    except StsError as exc:
        return _refused(request, web, op, exc)
    return render(request, web, op, "admin/meters.html", status=status, page=page,
                  choices=_choices(web) if may(op.role, "admin") else {}, **ctx)


@router.get("/admin/meters")
def meters_page(request: Request, op: Registers) -> Response:
    return show_meters(request, op)


@action(router, "/admin/meters", show_meters, lambda form: _meter_back(form, "meter-added"))
def meter_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    pan = meter_number(form.get("meter"))
    ti = form.get("ti", "1").strip() or "1"
    if not ti.isdigit():
        raise InputError("the tariff index is a number 0-99", field="ti")
    web.registry(op).add_meter(pan, sgc=form.get("sgc", ""), tariff=form.get("tariff", ""),
                               ti=int(ti), customer=form.get("customer", "").strip() or None)
    return "meter-added"


def _meter_back(form: dict[str, str], code: str = "") -> str:
    """Back to the meter's own page after a change made there."""
    try:
        return meter_href(meter_number(form.get("meter")))
    except StsError:
        return "/admin/meters"


def show_meter(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    """A meter's page (also shown again, with the error, when a change on it is refused)."""
    web = web_of(request)
    typed = request.path_params.get("number") or ctx.get("form", {}).get("meter", "")
    try:
        found = records.meter_record(web.service, web.caller(op), meter_number(typed),
                                     params(request))
    except StsError as exc:
        return _refused(request, web, op, exc)
    choices = _choices(web) if may(op.role, "admin") else {}
    return render(request, web, op, "records/meter.html", status=status, choices=choices,
                  may_change=may(op.role, "admin"), **found, **ctx)


@router.get("/meters/{number}")
def meter_page(request: Request, op: MeterReader, number: str) -> Response:
    try:
        pan = meter_number(number)
    except StsError as exc:
        return _refused(request, web_of(request), op, exc)
    if number != printed_number(pan):
        return redirect(meter_href(pan))
    return show_meter(request, op)


@action(router, "/admin/meters/status", show_meter, _meter_back)
def meter_status(web: Web, op: Operator, form: dict[str, str]) -> str:
    pan = meter_number(form.get("meter"))
    block = form.get("action") == "block"
    reason = form.get("reason", "").strip()
    if block and len(reason) < 3:
        raise InputError("give the reason for blocking (at least 3 characters)", field="reason")
    web.registry(op).set_meter_status(pan, "blocked" if block else "active", reason)
    return "meter-blocked" if block else "meter-unblocked"


@action(router, "/admin/meters/tariff", show_meter, _meter_back)
def meter_tariff(web: Web, op: Operator, form: dict[str, str]) -> str:
    catalogue.set_meter_tariff(web.registry(op), meter_number(form.get("meter")),
                               form.get("tariff", ""))
    return "meter-tariff"


# --- customers --------------------------------------------------------------------------


def show_customers(request: Request, op: Operator, *, status: int = 200,
                   **ctx: Any) -> Response:
    web = web_of(request)
    try:
        page = lists.list_customers(web.service, web.caller(op), params(request))
    except StsError as exc:
        return _refused(request, web, op, exc)
    return render(request, web, op, "admin/customers.html", status=status, page=page,
                  may_change=may(op.role, "admin"), **ctx)


@router.get("/admin/customers")
def customers_page(request: Request, op: CustomerReader) -> Response:
    return show_customers(request, op)


@action(router, "/admin/customers", show_customers,
        lambda form: f"/customers/{quote(form.get('account_no', '').strip(), safe='')}")
def customer_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    if not form.get("account_no", "").strip() or not form.get("name", "").strip():
        raise InputError("give the account number and the name", field="account_no")
    web.registry(op).add_customer(form["account_no"].strip(), form["name"].strip(),
                                  address=form.get("address", "").strip(),
                                  phone=form.get("phone", "").strip(),
                                  debt=typed_amount(web, op, form.get("debt") or "0", "debt",
                                                    N_("the opening debt")))
    return "customer-added"


@router.get("/customers/{account}")
def customer_page(request: Request, op: CustomerReader, account: str) -> Response:
    web = web_of(request)
    try:
        found = records.customer_record(web.service, web.caller(op), account, params(request))
    except StsError as exc:
        return _refused(request, web, op, exc)
    return render(request, web, op, "records/customer.html", **found)
