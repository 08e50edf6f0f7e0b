"""The back office's vendors: adding them, authorising them for supply groups, topping up their
float (administrator) and their float statement (administrator or supervisor)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError, StsError
from sts.vending import floats, reports
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.listing import ListSpec, Page, PageRequest
from sts.vending.registry import catalogue, float_approvals
from sts.vending.usecases import lists_office
from sts.web.common import Web, need, period, typed_amount, web_of
from sts.web.office import action, list_page, render
from sts.web.paging import params

router = APIRouter()
Office = Annotated[Operator, Depends(need("back_office"))]

show_vendors = list_page(
    router, "/admin/vendors", "admin/vendors.html",
    lambda request, web: {"choices": catalogue.choices(web.service.db),
                          "pending": float_approvals.requests(web.service.db),
                          "decided": float_approvals.requests(web.service.db, state=None,
                                                              limit=10)},
    endpoint="vendors_page", paged=lists_office.list_vendors)


@action(router, "/admin/vendors", show_vendors, "/admin/vendors")
def vendor_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    name = form.get("name", "").strip()
    if not name:
        raise InputError("give the vendor's name", field="name")
    sgc = form.get("sgc", "")
    web.registry(op).add_vendor(name, address=form.get("address", "").strip(),
                                sgcs=[sgc] if sgc else [])
    return "vendor-added"


@action(router, "/admin/vendors/authorise", show_vendors, "/admin/vendors")
def vendor_authorise(web: Web, op: Operator, form: dict[str, str]) -> str:
    web.registry(op).authorise_vendor(form.get("vendor", ""), form.get("sgc", ""))
    return "vendor-authorised"


@action(router, "/admin/vendors/top-up", show_vendors, "/admin/vendors")
def vendor_top_up(web: Web, op: Operator, form: dict[str, str]) -> str:
    done = float_approvals.request_top_up(web.registry(op), form.get("vendor", ""),
                                          typed_amount(web, op, form.get("amount")),
                                          form.get("reference", ""))
    return "topped-up" if done.state == "applied" else "top-up-pending"


def _request_id(form: dict[str, str]) -> int:
    text = form.get("request", "")
    if not text.isdigit() or len(text) > 12:
        raise InputError("the top-up request is a number", field="request")
    return int(text)


@action(router, "/admin/vendors/top-up/approve", show_vendors, "/admin/vendors",
        permission=float_approvals.APPROVE)
def vendor_top_up_approve(web: Web, op: Operator, form: dict[str, str]) -> str:
    float_approvals.decide(web.registry(op), _request_id(form), web.caller(op), approve=True)
    return "top-up-approved"


@action(router, "/admin/vendors/top-up/reject", show_vendors, "/admin/vendors",
        permission=float_approvals.APPROVE)
def vendor_top_up_reject(web: Web, op: Operator, form: dict[str, str]) -> str:
    float_approvals.decide(web.registry(op), _request_id(form), web.caller(op), approve=False,
                           reason=form.get("reason", ""))
    return "top-up-rejected"


STATEMENT = ListSpec(sorts={"when": ()}, default="when")  # in time order: a running balance


@router.get("/admin/vendors/statement")
def vendor_statement(request: Request, op: Office, vendor: str) -> Response:
    """A vendor's statement for a period, a page of lines at a time (the CSV: all of them)."""
    web = web_of(request)
    csv = request.query_params.get("format") == "csv"
    try:
        start, end = period(request, web, days=7)
        req = PageRequest.parse(params(request), STATEMENT)
        st = floats.statement(web.service.db, vendor, start, end,
                              page=None if csv else req.page, size=req.size)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Statement"), message=exc)
    if csv:
        from sts.web.reports import csv_response

        return csv_response(reports.to_csv(st["lines"], money=web.money(request),
                                           money_columns=reports.STATEMENT_MONEY),
                            f"statement-{vendor}.csv")
    shown = {"start": start.date().isoformat(),
             "end": (end - timedelta(days=1)).date().isoformat()}
    page = Page(rows=st["lines"], total=st["count"], exact=True, request=req,
                filters={"vendor": vendor, **shown})
    return render(request, web, op, "admin/statement.html", st=st, page=page,
                  start=shown["start"], end=shown["end"])
