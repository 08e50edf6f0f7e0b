"""The back office's one mechanism: a page that shows lists with its flash notice, and a posted
change that redirects (303) on success or shows the page again with the error.

Every back-office section is one `list_page` and a few `action`s over it, so the error and
notice handling, the section menu and the role checks are written once.

This module does not use postponed annotations: the endpoints built here take their role
dependency from the factory's arguments, so FastAPI must see the annotations as objects.
"""

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending.access.operators import Operator
from sts.vending.access.policy import Caller, may
from sts.vending.context import ServiceContext
from sts.vending.i18n import N_
from sts.vending.listing import Page
from sts.web.common import Web, need, posted, redirect, web_of
from sts.web.paging import params

Show = Callable[..., Response]
Load = Callable[[Request, Web], dict[str, Any]]
Act = Callable[[Web, Operator, dict[str, str]], str]
Lister = Callable[[ServiceContext, Caller, Mapping[str, str]], Page]

NOTICES = {
    "meter-added": N_("Meter registered."), "meter-blocked": N_("Meter blocked."),
    "meter-unblocked": N_("Meter unblocked."), "meter-tariff": N_("Meter moved to the new tariff."),
    "customer-added": N_("Customer added."), "tariff-added": N_("Tariff added."),
    "tariff-updated": N_("Tariff updated: the next sale uses the new prices."),
    "tariff-scheduled": N_("Tariff change saved: sales use it from the time it takes effect."),
    "top-up-pending": N_("Top-up recorded: it waits for another administrator's approval."),
    "top-up-approved": N_("Top-up approved: the float is topped up."),
    "top-up-rejected": N_("Top-up rejected: the float is unchanged."),
    "vendor-added": N_("Vendor added."), "vendor-authorised": N_("Vendor authorised for the SGC."),
    "topped-up": N_("Float topped up."), "operator-added": N_("Operator added."),
    "operator-role": N_("Role changed; the operator's sessions are ended."),
    "operator-disabled": N_("Operator disabled."), "operator-enabled": N_("Operator enabled."),
    "password-set": N_("Password set; the account is unlocked."), "key-revoked": N_("API key revoked."),
    "presets-saved": N_("Amount presets saved: the point of sale shows them from the next meter."),
    "reversed": N_("Sale reversed: its tokens are cancelled and the float is refunded."),
}
# (path, label, the action of the access policy that opens it)
SECTIONS = (("/admin/meters", N_("Meters"), "registers"),
            ("/admin/customers", N_("Customers"), "customer_record"),
            ("/admin/tariffs", N_("Tariffs"), "admin"), ("/admin/vendors", N_("Vendors"), "admin"),
            ("/admin/operators", N_("Operators"), "people"),
            ("/admin/api-keys", N_("API keys"), "people"),
            ("/admin/supply-groups", N_("Supply groups"), "admin"),
            ("/admin/counter", N_("Counter"), "counter_settings"),
            ("/admin/reversals", N_("Reversals"), "reverse"))


def render(request: Request, web: Web, op: Operator, name: str, *, status: int = 200,
           **ctx: Any) -> Response:
    """A back-office page: the section menu for the role, and the notice named by `?ok=`."""
    ok = request.query_params.get("ok")
    ctx.setdefault("notice", NOTICES.get(ok or ""))
    ctx.setdefault("error", None)
    ctx.setdefault("form", {})
    sections = [(path, label) for path, label, action in SECTIONS if may(op.role, action)]
    return web.render(request, name, op, status=status, sections=sections,
                      today=may(op.role, "back_office"), **ctx)


def list_page(router: APIRouter, path: str, name: str, load: Load, *,
              permission: str = "admin", endpoint: str, paged: Lister | None = None) -> Show:
    """Serve GET `path` (for the roles the access policy allows `permission`) as template
    `name` filled by `load` and, with `paged`, the page of the list the query string asks
    for (as `page`; a bad paging value is refused naming the field); return the page
    renderer, which the section's actions show again with their error."""

    def show(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
        web = web_of(request)
        if paged is not None:
            try:
                ctx["page"] = paged(web.service, web.caller(op), params(request))
            except StsError as exc:
                return web.render(request, "error.html", op, status=exc.http_status,
                                  title=N_("Not accepted"), message=exc)
        return render(request, web, op, name, status=status, **load(request, web), **ctx)

    def page(request: Request, op: Annotated[Operator, Depends(need(permission))]) -> Response:
        return show(request, op)

    router.add_api_route(path, page, methods=["GET"], name=endpoint)
    return show


def action(router: APIRouter, path: str, show: Show, back: str | Callable[[dict[str, str]], str],
           *, permission: str = "admin") -> Callable[[Act], Act]:
    """Serve POST `path` (CSRF-checked, for the roles allowed `permission`) by the decorated
    change, which returns the notice code: redirect to `back` (a path, or made from the form)
    with `ok=code`; on an error show the page again with the message, the field and the form
    as sent."""

    def register(act: Act) -> Act:
        def endpoint(request: Request, posted_: Annotated[tuple[Operator, dict[str, str]],
                                                          Depends(posted(permission))]) -> Response:
            op, form = posted_
            try:
                code = act(web_of(request), op, form)
            except StsError as exc:
                return show(request, op, status=exc.http_status, error=exc,
                            error_field=exc.field, form=form)
            page = back(form) if callable(back) else back
            sep = "&" if "?" in page else "?"
            return redirect(f"{page}{sep}ok={code}")

        router.add_api_route(path, endpoint, methods=["POST"], name=act.__name__)
        return act

    return register
