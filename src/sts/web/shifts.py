"""Shifts at the counter: a cashier opens and closes their shift and prints its cash-up; a
supervisor (administrator, auditor) lists the shifts of a period per vendor, tied to the
vendor's sales.  The rules are `sts.vending.usecases.shifts`; these pages parse and render."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError, UnknownRecord
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.usecases import presets, shifts
from sts.web.common import Web, need, period, posted, redirect, typed_amount, web_of
from sts.web.office import action, list_page

router = APIRouter()
Cashier = Annotated[Operator, Depends(need("shift"))]
CashierPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("shift"))]
Reader = Annotated[Operator, Depends(need())]
Supervisor = Annotated[Operator, Depends(need("shifts"))]


def _cash(web: Web, op: Operator, form: dict[str, str], field: str, label: str) -> str:
    """Cash typed in the utility's way ("1 000,50") as the service's decimal ("" for none)."""
    text = form.get(field, "").strip()
    return typed_amount(web, op, text, field=field, label=label) if text else ""


def _mine(request: Request, web: Web, op: Operator, *, status: int = 200,
          **ctx: Any) -> Response:
    """The cashier's shift page: the open shift's figures so far and the close form."""
    current = None
    if op.vendor_id is not None:
        current = shifts.current(web.service.db, web.caller(op))
    ctx.setdefault("error", None)
    ctx.setdefault("form", {})
    return web.render(request, "shift_close.html", op, status=status, shift=current, **ctx)


@router.get("/pos/shift")
def my_shift(request: Request, op: Cashier) -> Response:
    return _mine(request, web_of(request), op)


@router.post("/pos/shift/open")
def open_shift(request: Request, posted_: CashierPost) -> Response:
    web = web_of(request)
    op, form = posted_
    try:
        opening = _cash(web, op, form, "opening_cash", N_("the cash in the drawer"))
        shifts.open_shift(web.service.db, web.caller(op), opening, now=web.service.now())
    except StsError as exc:
        return _mine(request, web, op, status=exc.http_status, error=exc,
                     error_field=exc.field, form=form)
    return redirect("/pos")


@router.post("/pos/shift/close")
def close_shift(request: Request, posted_: CashierPost) -> Response:
    web = web_of(request)
    op, form = posted_
    try:
        counted = _cash(web, op, form, "counted_cash", N_("the cash counted"))
        done = shifts.close_shift(web.service.db, web.caller(op), counted,
                                  form.get("note", ""), now=web.service.now())
    except StsError as exc:
        return _mine(request, web, op, status=exc.http_status, error=exc,
                     error_field=exc.field, form=form)
    return redirect(f"/shifts/{done['id']}")


@router.get("/shifts/{shift_id}")
def cash_up(request: Request, shift_id: str, op: Reader) -> Response:
    """A shift's cash-up, to print: the cashier's own, or any a supervisor may see."""
    web = web_of(request)
    try:
        if not shift_id.isdigit() or len(shift_id) > 9:
            raise UnknownRecord(f"no shift {shift_id}", field="shift")
        s = shifts.shift(web.service.db, web.caller(op), int(shift_id))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("No such shift"), message=exc)
    return web.render(request, "shift.html", op, s=s)


@router.get("/shifts")
def shift_list(request: Request, op: Supervisor) -> Response:
    web = web_of(request)
    try:
        start, end = period(request, web)
        rep = shifts.report(web.service.db, web.caller(op), start, end)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Shifts"), message=exc)
    return web.render(request, "shifts.html", op, rep=rep, start=start.date().isoformat(),
                      end=(end - timedelta(days=1)).date().isoformat())


# --- the counter's settings (administrator) -----------------------------------------------


show_counter = list_page(
    router, "/admin/counter", "admin/counter.html",
    lambda request, web: {"utilities": presets.every_utility(web.service.db)},
    permission="counter_settings", endpoint="counter_page")


@action(router, "/admin/counter", show_counter, "/admin/counter", permission="counter_settings")
def counter_presets(web: Web, op: Operator, form: dict[str, str]) -> str:
    presets.set_presets(web.service.db, web.caller(op), form.get("utility", ""),
                        form.get("presets", ""), actor=f"web:{op.username}",
                        now=web.service.now())
    return "presets-saved"
