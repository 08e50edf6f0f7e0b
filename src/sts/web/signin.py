"""Sign-in and sign-out pages."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sts.errors import NotAuthenticated, StsError
from sts.vending.access import operators
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.web.common import (
    COOKIE,
    LOGIN_CSRF,
    Forbidden,
    Form,
    check_origin,
    current,
    new_login_csrf,
    posted,
    redirect,
    set_cookie,
    web_of,
)

router = APIRouter()

HOME = {"vendor": "/pos", "supervisor": "/pos", "engineer": "/engineering", "admin": "/admin",
        "auditor": "/reports"}


def _safe_next(value: str | None) -> str | None:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    op = current(request)
    return redirect(HOME[op.role] if op else "/login")


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    web = web_of(request)
    token = new_login_csrf()
    resp = web.render(request, "login.html", None, csrf=token, next=_safe_next(next) or "",
                      username="", error=None)
    set_cookie(request, resp, LOGIN_CSRF, token, max_age=3600)
    return resp


@router.post("/login", include_in_schema=False)
def login(request: Request, form: Form) -> Response:
    web = web_of(request)
    cookie = request.cookies.get(LOGIN_CSRF, "")
    sent = form.get("csrf", "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise Forbidden(N_("the sign-in form has expired; open the page again"))
    check_origin(request)
    username = form.get("username", "").strip()
    address = request.client.host if request.client else "unknown"
    try:
        if not username or not form.get("password"):
            raise NotAuthenticated(N_("enter your username and password"), field="username")
        op, token = operators.sign_in(web.service.db, username, form.get("password", ""),
                                      address=address, now=web.now(),
                                      limit=web.service.signin_limit)
    except StsError as exc:
        token2 = new_login_csrf()
        page = web.render(request, "login.html", None, status=exc.http_status, csrf=token2,
                          next=_safe_next(form.get("next")) or "", username=username,
                          error=exc)
        set_cookie(request, page, LOGIN_CSRF, token2, max_age=3600)
        return page
    resp = redirect(_safe_next(form.get("next")) or HOME[op.role])
    set_cookie(request, resp, COOKIE, token)
    resp.delete_cookie(LOGIN_CSRF, path="/")
    return resp


@router.post("/logout", include_in_schema=False)
def logout(request: Request,
           posted_: Annotated[tuple[Operator, dict[str, str]], Depends(posted())]) -> Response:
    web = web_of(request)
    operators.sign_out(web.service.db, request.cookies.get(COOKIE), now=web.now())
    resp = redirect("/login")
    resp.delete_cookie(COOKIE, path="/")
    return resp
