"""The point of sale: meter number -> customer -> amount -> trial -> Sell -> tokens -> Print.

The page makes the purchase id once, when it shows the trial; Sell posts it, so a double
click (or a resubmitted form) gets the stored sale back from the service, never a second one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.codec.pan import printed_number
from sts.errors import InputError, StsError
from sts.vending import receipts, reports, testtokens
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.tenders import tender_of
from sts.vending.usecases import presets, shifts
from sts.web import counter_text
from sts.web.common import Web, meter_number, need, posted, redirect, web_of, words

router = APIRouter()
Seller = Annotated[Operator, Depends(need("point_of_sale"))]
SellerPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("point_of_sale"))]
Tester = Annotated[Operator, Depends(need("test_tokens"))]

def _till(web: Web, op: Operator) -> dict[str, Any] | None:
    if op.vendor_id is None:
        return None
    today = datetime.combine(web.now().date(), datetime.min.time())
    return reports.vendor_day(web.service.db, op.vendor_id, today, today + timedelta(days=1))


def _refusal(request: Request, web: Web, op: Operator, exc: StsError) -> str:
    """A refusal as the cashier reads it: in their language, amounts the utility's way."""
    return counter_text.refusal(exc, words(request, op), web.money(request).amount)


def _page(request: Request, web: Web, op: Operator, meter: str, amount: str, *,
          error: StsError | None = None, status: int = 200, **extra: Any) -> Response:
    """The point of sale for the meter and amount typed: the customer, the amount step with
    the utility's presets, the breakdown; a refusal stands by the field it concerns."""
    ctx: dict[str, Any] = {"meter_text": meter, "amount_text": amount, "lookup": None,
                           "trial": None, "error": None, "error_field": None, "presets": (),
                           "till": _till(web, op), "shift": _shift(web, op)} | extra
    caller = web.caller(op)
    try:
        if error is not None:
            raise error
        if meter:
            pan = meter_number(meter)
            ctx["pan"], ctx["drn"] = pan, printed_number(pan)
            ctx["lookup"] = web.service.lookup(pan, caller)
            ctx["presets"] = presets.for_meter(web.service.db, pan)
            if amount:
                typed = web.money(request).plain(amount, field="amount", _=words(request, op))
                ctx["trial"] = web.service.trial({"meter": pan, "amount": typed}, caller)
                ctx["purchase_id"] = str(uuid.uuid4())
    except StsError as exc:
        ctx["error"] = _refusal(request, web, op, exc)
        if exc.field in ("meter", "pan") and ctx["lookup"] is None:
            ctx["error_field"] = "meter"
        elif ctx["lookup"] is not None or exc.field == "amount":
            ctx["error_field"] = "amount"
        else:
            ctx["error_field"] = exc.field
        if error is not None and meter and ctx["lookup"] is None:
            # a refused sale: show the customer and the amount again, the error by the amount
            try:
                pan = meter_number(meter)
                ctx["pan"], ctx["drn"] = pan, printed_number(pan)
                ctx["lookup"] = web.service.lookup(pan, caller)
                ctx["presets"] = presets.for_meter(web.service.db, pan)
            except StsError:
                pass
    return web.render(request, "pos.html", op, status=status, **ctx)


@router.get("/pos")
def pos(request: Request, op: Seller, meter: str | None = None, amount: str | None = None,
        preset: str | None = None) -> Response:
    return _page(request, web_of(request), op, (meter or "").strip(),
                 (preset or amount or "").strip())


@router.post("/pos/sell")
def sell(request: Request, posted_: SellerPost) -> Response:
    web = web_of(request)
    op, form = posted_
    pid = form.get("purchase_id", "")
    typed = form.get("meter", "")
    try:
        pan = meter_number(typed)
        try:
            uuid.UUID(pid)
        except ValueError:
            raise InputError("the sale form is damaged; start the sale again",
                             field="purchase_id") from None
        caller = web.caller(op)
        if op.vendor_id is not None:
            # a sale without an open shift opens one (no opening cash): never refused for it
            shifts.ensure_open(web.service.db, caller, now=web.service.now())
        body = {"meter": pan, "amount": web.money(request).plain(form.get("amount"),
                                                                 _=words(request, op)),
                "pay_type": tender_of(form.get("tender")) or "cash"}
        web.service.purchase(pid, body, caller)
    except StsError as exc:
        return _page(request, web, op, typed, form.get("amount", ""), error=exc,
                     status=exc.http_status)
    return redirect(f"/pos/sale/{pid}")


def _sale_view(sale: dict[str, Any], *, reprint: bool,
               _: receipts.Gettext) -> dict[str, Any]:
    """The sale page: its receipt, and the slip model the API's text slip renders too, in
    the operator's language."""
    tokens = sale.get("tokens", [])
    receipt = sale.get("receipt", {})
    title = "REPRINT - COPY OF TAX INVOICE" if reprint else "CREDIT VEND - TAX INVOICE"
    slip = receipts.slip_model(receipt, tokens, title=title, _=_)
    deliveries = [d | {"detail": counter_text.delivery(
        d.get("status", ""), d.get("channel", ""), d.get("reason"),
        (d.get("meter_result") or {}).get("display"), _)} for d in sale.get("delivery") or []]
    return {"sale": sale, "receipt": receipt, "tokens": [t.__dict__ for t in slip.tokens],
            "slip": slip, "instructions": slip.instruction, "reprint": reprint,
            "deliveries": deliveries}


def _shift(web: Web, op: Operator) -> dict[str, Any] | None:
    """The operator's open shift (its figures so far), or None."""
    if op.vendor_id is None:
        return None
    return shifts.current(web.service.db, web.caller(op))


@router.get("/pos/sale/{purchase_id}")
def sale(request: Request, purchase_id: str, op: Seller) -> Response:
    web = web_of(request)
    try:
        out = web.service.get_purchase(purchase_id, web.caller(op))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("No such sale"), message=exc)
    return web.render(request, "sale.html", op, till=_till(web, op), shift=_shift(web, op),
                      **_sale_view(out, reprint=False, _=words(request, op)))


@router.post("/pos/reprint")
def reprint(request: Request, posted_: SellerPost) -> Response:
    web = web_of(request)
    op, form = posted_
    try:
        body: dict[str, Any] = {}
        if form.get("receipt_no", "").strip():
            body["receipt_no"] = form["receipt_no"].strip()
        else:
            body["meter"] = meter_number(form.get("meter"), field="meter")
        out = web.service.reprint(body, web.caller(op))
    except StsError as exc:
        field = "reprint_receipt" if exc.field == "receipt_no" else "reprint_meter"
        return _page(request, web, op, "", "", status=exc.http_status,
                     reprint_error=_refusal(request, web, op, exc),
                     reprint_field=field,
                     reprint_meter=form.get("meter", ""),
                     reprint_receipt=form.get("receipt_no", ""))
    return web.render(request, "sale.html", op, till=_till(web, op), shift=_shift(web, op),
                      **_sale_view(out, reprint=True, _=words(request, op)))


@router.get("/pos/tests")
def tests(request: Request, op: Tester, meter: str | None = None) -> Response:
    web = web_of(request)
    ctx: dict[str, Any] = {"meter_text": meter or "", "tests": None, "error": None}
    if meter:
        try:
            pan = meter_number(meter)
            ctx["tests"], ctx["drn"] = testtokens.for_meter(pan), printed_number(pan)
        except StsError as exc:
            ctx["error"] = exc
    return web.render(request, "tests.html", op, **ctx)
