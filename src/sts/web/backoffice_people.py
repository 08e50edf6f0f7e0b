"""The back office's people (administrator): operator accounts and the API keys of integrators,
each a paged list (`sts.vending.usecases.lists_office`) with its forms."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError, StsError
from sts.vending.access.operators import Operator
from sts.vending.access.usernames import username_key
from sts.vending.i18n import N_
from sts.vending.registry import catalogue
from sts.vending.registry import operators as operator_admin
from sts.vending.usecases import lists_office
from sts.web.common import Web, need, posted, web_of
from sts.web.office import action, list_page, render

router = APIRouter()
AdminPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("admin"))]
Admin = Annotated[Operator, Depends(need("people"))]

show_operators = list_page(
    router, "/admin/operators", "admin/operators.html",
    lambda request, web: {"choices": catalogue.choices(web.service.db)},
    endpoint="operators_page", permission="people", paged=lists_office.list_operators)
show_keys = list_page(
    router, "/admin/api-keys", "admin/api_keys.html",
    lambda request, web: {"choices": catalogue.choices(web.service.db)},
    endpoint="api_keys_page", permission="people", paged=lists_office.list_api_keys)


@action(router, "/admin/operators", show_operators, "/admin/operators")
def operator_add(web: Web, op: Operator, form: dict[str, str]) -> str:
    operator_admin.add_operator(web.registry(op), form.get("username", "").strip(),
                           form.get("role", ""), form.get("password", ""),
                           name=form.get("name", "").strip(), vendor=form.get("vendor") or None)
    return "operator-added"


def show_operator(request: Request, op: Operator, *, status: int = 200,
                  **ctx: Any) -> Response:
    """An operator's own page: who they are, their state, and the administrator's changes
    (enable or disable, a new password, another role), each a form of its own."""
    web = web_of(request)
    username = request.path_params.get("username") or ctx.get("form", {}).get("username", "")
    try:
        record = lists_office.operator_record(web.service, web.caller(op), username)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Operators"), message=exc)
    return render(request, web, op, "admin/operator.html", status=status, o=record,
                  choices=catalogue.choices(web.service.db),
                  own=username_key(str(record["username"])) == username_key(op.username), **ctx)


@router.get("/admin/operators/{username}")
def operator_page(request: Request, op: Admin, username: str) -> Response:
    return show_operator(request, op)


def _back_to(form: dict[str, str]) -> str:
    return "/admin/operators/" + quote(form.get("username", ""), safe="")


def _not_yourself(op: Operator, username: str) -> None:
    if username_key(username) == username_key(op.username):  # however the name is typed
        raise InputError(N_("you cannot change your own account here"), field="username")


@action(router, "/admin/operators/role", show_operator, _back_to)
def operator_role(web: Web, op: Operator, form: dict[str, str]) -> str:
    username = form.get("username", "")
    _not_yourself(op, username)
    operator_admin.set_role(web.registry(op), username, form.get("role", ""),
                            vendor=form.get("vendor") or None)
    return "operator-role"


@action(router, "/admin/operators/state", show_operator, _back_to)
def operator_state(web: Web, op: Operator, form: dict[str, str]) -> str:
    username = form.get("username", "")
    _not_yourself(op, username)
    if form.get("action") == "password":
        operator_admin.set_password(web.registry(op), username, form.get("password", ""))
        return "password-set"
    enable = form.get("action") == "enable"
    operator_admin.set_active(web.registry(op), username, enable)
    return "operator-enabled" if enable else "operator-disabled"


@router.post("/admin/api-keys")
def api_key_add(request: Request, posted_: AdminPost) -> Response:
    """The new key is shown once, on this page, rather than after a redirect."""
    op, form = posted_
    web = web_of(request)
    try:
        key = web.registry(op).add_api_key(form.get("role", ""),
                                           label=form.get("label", "").strip(),
                                           vendor=form.get("vendor") or None)
    except StsError as exc:
        return show_keys(request, op, status=exc.http_status, error=exc, form=form)
    return show_keys(request, op, new_key=key)


@action(router, "/admin/api-keys/revoke", show_keys, "/admin/api-keys")
def api_key_revoke(web: Web, op: Operator, form: dict[str, str]) -> str:
    web.registry(op).revoke_api_key(form.get("prefix", ""))
    return "key-revoked"
