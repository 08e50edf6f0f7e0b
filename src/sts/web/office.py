"""The back office's one mechanism: a page that shows lists with its flash notice, and a posted
change that redirects (303) on success or shows the page again with the error.

Every back-office section is one `list_page` and a few `action`s over it, so the error and
notice handling, the section menu and the role checks are written once.

This module does not use postponed annotations: the endpoints built here take their role
dependency from the factory's arguments, so FastAPI must see the annotations as objects.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending.access.operators import Operator
from sts.vending.access.policy import may
from sts.web.common import Web, need, posted, redirect, web_of

Show = Callable[..., Response]
Load = Callable[[Request, Web], dict[str, Any]]
Act = Callable[[Web, Operator, dict[str, str]], str]

NOTICES = {
    "meter-added": "Meter registered.", "meter-blocked": "Meter blocked.",
    "meter-unblocked": "Meter unblocked.", "meter-tariff": "Meter moved to the new tariff.",
    "customer-added": "Customer added.", "tariff-added": "Tariff added.",
    "tariff-updated": "Tariff updated: the next sale uses the new prices.",
    "tariff-scheduled": "Tariff change saved: sales use it from the time it takes effect.",
    "top-up-pending": "Top-up recorded: it waits for another administrator's approval.",
    "top-up-approved": "Top-up approved: the float is topped up.",
    "top-up-rejected": "Top-up rejected: the float is unchanged.",
    "vendor-added": "Vendor added.", "vendor-authorised": "Vendor authorised for the SGC.",
    "topped-up": "Float topped up.", "operator-added": "Operator added.",
    "operator-disabled": "Operator disabled.", "operator-enabled": "Operator enabled.",
    "password-set": "Password set; the account is unlocked.", "key-revoked": "API key revoked.",
    "presets-saved": "Amount presets saved: the point of sale shows them from the next meter.",
    "reversed": "Sale reversed: its tokens are cancelled and the float is refunded.",
}
# (path, label, the action of the access policy that opens it)
SECTIONS = (("/admin/meters", "Meters", "registers"),
            ("/admin/customers", "Customers", "customer_record"),
            ("/admin/tariffs", "Tariffs", "admin"), ("/admin/vendors", "Vendors", "admin"),
            ("/admin/operators", "Operators & API keys", "people"),
            ("/admin/supply-groups", "Supply groups", "admin"),
            ("/admin/counter", "Counter", "counter_settings"),
            ("/admin/reversals", "Reversals", "reverse"))


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
              permission: str = "admin", endpoint: str) -> Show:
    """Serve GET `path` (for the roles the access policy allows `permission`) as template
    `name` filled by `load`; return the page renderer, which the section's actions show again
    with their error."""

    def show(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
        web = web_of(request)
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
                return show(request, op, status=exc.http_status, error=exc.message,
                            error_field=exc.field, form=form)
            page = back(form) if callable(back) else back
            sep = "&" if "?" in page else "?"
            return redirect(f"{page}{sep}ok={code}")

        router.add_api_route(path, endpoint, methods=["POST"], name=act.__name__)
        return act

    return register
