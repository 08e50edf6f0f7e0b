"""Mobile-money payments on the web back office: the exceptions to act on (payments the
channel could not sell, with their reason), filtered by provider; one payment with its sale
(as `GET /v1/payments` shows it); and the settle actions (sell again / refund with a reason)
for the roles the access policy lets settle.  Supervisors, administrators and auditors read
(`payments`); the service checks `settle_payment` again on every settle."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending.access.operators import Operator
from sts.vending.access.policy import may
from sts.vending.i18n import N_
from sts.vending.usecases import lists_office
from sts.web.common import need, posted, redirect, web_of
from sts.web.paging import params

router = APIRouter()
Reader = Annotated[Operator, Depends(need("payments"))]
Settler = Annotated[tuple[Operator, dict[str, str]], Depends(posted("settle_payment"))]
PROVIDERS = (("", N_("All providers")), ("mpesa", "M-Pesa"), ("momo", "MTN MoMo"))
STATES = ("exception", "received", "sold", "refunded")
NOTICES = {"sell": N_("Sold again: the token goes to the payer by SMS."),
           "refund": N_("Marked refunded."),
           "still": N_("Still refused: the new reason is shown.")}


@router.get("/payments")
def payments_page(request: Request, op: Reader, provider: str = "",
                  state: str = "exception") -> Response:
    """A page of the payments of one state and provider (`lists_office.list_payments`)."""
    web = web_of(request)
    try:
        page = lists_office.list_payments(web.service, web.caller(op), params(request))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Payments"), message=exc)
    return web.render(request, "payments/list.html", op, page=page, provider=provider,
                      state=state, providers=PROVIDERS, states=STATES, error=None)


def _detail(request: Request, op: Operator, provider: str, provider_id: str, *,
            status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    try:
        p = web.service.payment(provider, provider_id, web.caller(op))
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Payment"), message=exc)
    ok = request.query_params.get("ok", "")
    return web.render(request, "payments/detail.html", op, status=status, p=p,
                      may_settle=may(op.role, "settle_payment"), notice=NOTICES.get(ok),
                      **({"error": None, "form": {}} | ctx))


@router.get("/payments/{provider}/{provider_id}")
def payment_page(request: Request, op: Reader, provider: str, provider_id: str) -> Response:
    return _detail(request, op, provider, provider_id)


@router.post("/payments/{provider}/{provider_id}/settle")
def settle(request: Request, posted_: Settler, provider: str, provider_id: str) -> Response:
    op, form = posted_
    web = web_of(request)
    action = form.get("action", "")
    try:
        out = web.service.settle_payment(provider, provider_id, action,
                                         form.get("reason", "").strip(), web.caller(op))
    except StsError as exc:
        return _detail(request, op, provider, provider_id, status=exc.http_status,
                       error=exc, error_field=exc.field, form=form)
    code = "still" if action == "sell" and out["state"] == "exception" else action
    return redirect(f"/payments/{provider}/{provider_id}?ok={code}")
