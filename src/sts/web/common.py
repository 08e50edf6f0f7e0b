"""What every page shares: templates, the signed-in operator, CSRF, errors in plain words.

Authorisation is checked here, on the server, for every page and every form: a page names
the roles it serves (`need(...)`), a form handler also proves the CSRF token (`posted(...)`).
The session cookie is HttpOnly and SameSite=Strict, and Secure when the request came over TLS
(directly or through a proxy that says so in X-Forwarded-Proto).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from sts.codec.digits import group
from sts.codec.pan import MeterPan, parse_pan
from sts.errors import InputError, InvalidDrn, InvalidPan, StsError
from sts.vending import i18n, text
from sts.vending.access import operators
from sts.vending.access.operators import Operator
from sts.vending.access.policy import Caller, may
from sts.vending.i18n import N_
from sts.vending.money_text import MoneyStyle, house_style, style
from sts.vending.registry.admin import Registry
from sts.vending.service import VendingService
from sts.web import paging

HERE = Path(__file__).parent
COOKIE = "sts_session"
LOGIN_CSRF = "sts_login_csrf"
ROLE_NAMES = {"vendor": N_("Cashier"), "supervisor": N_("Supervisor"),
              "engineer": N_("Engineer"), "admin": N_("Administrator"),
              "auditor": N_("Auditor")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# the menu: (path, label, the action of the access policy that opens it)
MENU: tuple[tuple[str, str, str], ...] = (
    ("/pos", N_("Point of sale"), "point_of_sale"),
    ("/admin", N_("Back office"), "back_office"),
    ("/engineering", N_("Engineering"), "engineering"),
    ("/reports", N_("Reports"), "reports"),
    ("/shifts", N_("Shifts"), "shifts"),
    ("/payments", N_("Payments"), "payments"),
    ("/simulator", N_("Meter simulator"), "simulator"),
    ("/audit", N_("Audit log"), "audit_log"),
)


# the language the template being rendered speaks (set by `Web.render`, read by `_()`)
LANGUAGE: ContextVar[str] = ContextVar("language", default=i18n.SOURCE)


def words(request: Request, op: Operator | None) -> Callable[[str], str]:
    """The gettext of the language this operator reads (theirs, else the utility's)."""
    cur = web_of(request).money(request)
    return i18n.gettext_for(cur.locale, op.language if op is not None else None)


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Forbidden(Exception):
    """A page or form refused to this operator: `template` marked for translation, `params`
    its values (catalogue words themselves, such as a role's name), filled in the reader's
    language by the error page."""

    def __init__(self, message: str, **params: str) -> None:
        self.template, self.params = message, params
        self.message = message.format(**params) if params else message

    def said(self, _: Callable[[str], str]) -> str:
        return _(self.template).format(**{k: _(v) for k, v in self.params.items()})


class Web:
    """The web face: the service, its registry, and the templates."""

    def __init__(self, service: VendingService) -> None:
        self.service = service
        self.last_style: MoneyStyle | None = None  # the house style last read (refusal pages)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["role_names"] = ROLE_NAMES
        self.templates.env.globals["may"] = may  # links shown only to roles that may open them
        self.templates.env.filters["group4"] = group
        self.templates.env.filters["sentence"] = sentence
        env = self.templates.env
        i18n.install(env, LANGUAGE.get)
        env.globals["languages"] = i18n.LANGUAGES
        self.templates.env.filters["money"] = lambda v, st: st.amount(v)
        self.templates.env.filters["num"] = lambda v, st: st.number(v)
        self.templates.env.globals |= {"page_href": paging.page_href,
                                       "sort_href": paging.sort_href}
        self.templates.env.globals["unique_id"] = unique_id

    def now(self) -> datetime:
        return self.service.now().replace(tzinfo=None)

    def registry(self, op: Operator) -> Registry:
        """The registry acting as this operator: every change is audited under their name."""
        return Registry(self.service.db, self.service.sm, actor=f"web:{op.username}",
                        clock=self.service.clock)

    def money(self, request: Request) -> MoneyStyle:
        """The utility's way of writing money (`sts.vending.money_text`), once per request."""
        if not hasattr(request.state, "money"):
            request.state.money = self.last_style = house_style(self.service.db)
        found: MoneyStyle = request.state.money
        return found

    def refusal_style(self) -> MoneyStyle:
        """The style for a page refusing input before anything else ran: the last one read,
        never a database call (a refusal must not reach the database)."""
        return self.last_style or style(None, "ZAR")

    def caller(self, op: Operator) -> Caller:
        return operators.caller(self.service.db, op, now=self.now())

    def render(self, request: Request, name: str, op: Operator | None, *, status: int = 200,
               **ctx: Any) -> HTMLResponse:
        menu = [(p, label) for p, label, action in MENU if op is not None and may(op.role, action)]
        cur = self.money(request) if op is not None or status < 400 else self.refusal_style()
        lang = i18n.language_of(cur.locale, op.language if op is not None else None)
        LANGUAGE.set(lang)  # the template renders here, in this thread and context
        # a refusal of the service handed over as itself is shown in the reader's language
        reader = i18n.translations(lang).gettext
        ctx = {k: i18n.said(v, reader, cur.amount) if isinstance(v, StsError) else v
               for k, v in ctx.items()}
        ctx |= {"op": op, "menu": menu, "path": request.url.path, "cur": cur, "lang": lang,
                "_ids": {}}
        resp = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        resp.headers.update(SECURITY_HEADERS)
        return resp


@pass_context
def unique_id(context: Context, base: str) -> str:
    """`base` the first time a page asks for it, then `base-2`, `base-3`, ...: two forms on
    one page with a field of the same name get distinct ids (so each label points at its
    own field)."""
    seen = context.get("_ids")
    if not isinstance(seen, dict):
        return base
    n = seen[base] = seen.get(base, 0) + 1
    return base if n == 1 else f"{base}-{n}"


def sentence(text: str | None) -> str:
    """A message as a sentence: first letter upper case, the rest as written."""
    text = (text or "").strip()
    return text[:1].upper() + text[1:] if text else ""


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def secure(request: Request) -> bool:
    """Served over HTTPS: by us (TLS), or by a proxy named in --forwarded-allow-ips (uvicorn
    takes X-Forwarded-Proto from those only; from anyone else the header is not believed)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, resp: Response, name: str, value: str, *,
               max_age: int | None = None) -> None:
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                    secure=secure(request), path="/")


def current(request: Request) -> Operator | None:
    if hasattr(request.state, "operator"):
        cached: Operator | None = request.state.operator
        return cached
    web = web_of(request)
    op = operators.session(web.service.db, request.cookies.get(COOKIE), now=web.now())
    request.state.operator = op
    return op


def need(action: str | None = None) -> Callable[[Request], Operator]:
    """A page dependency: the signed-in operator, whose role must be allowed `action` by the
    service's access policy (`PERMISSIONS`); any signed-in operator when None."""

    def dependency(request: Request) -> Operator:
        op = current(request)
        if op is None:
            nxt = request.url.path if request.method == "GET" else "/"
            raise SignInNeeded(nxt)
        if action is not None and not may(op.role, action):
            raise Forbidden(N_("your role ({role}) may not open this page"),
                            role=ROLE_NAMES[op.role])
        return op

    return dependency


class BadInput(Exception):
    """A form field or query parameter that breaks the text rule (`sts.vending.text`): shown
    as an error page (422) naming the field, before any database call."""

    def __init__(self, field: str, found: str) -> None:
        self.field, self.found = field, found
        self.message = text.rule_text(field, found)

    def said(self, _: Callable[[str], str]) -> str:
        return _(text.RULE).format(name=self.field, found=self.found)


def _plain(name: str, value: str, *, multiline: bool) -> None:
    for field, checked, lines in ((name, value, multiline), ("field name", name, False)):
        char = text.bad_char(checked, multiline=lines)
        if char is not None:
            shown = field if text.bad_char(field) is None else "field name"
            raise BadInput(shown, text.describe(char))


async def _form(request: Request) -> dict[str, str]:
    """Every posted form, parsed once: a browser's CRLF line ends become LF, and a field with
    any other control character is refused (the text rule)."""
    data = await request.form()
    form = {k: v.replace("\r\n", "\n") for k, v in data.items() if isinstance(v, str)}
    for name, value in form.items():
        _plain(name, value, multiline=True)
    return form


def plain_query(request: Request) -> None:
    """A dependency of every page: query strings and path parameters follow the text rule."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        _plain(name, str(value), multiline=False)


Form = Annotated[dict[str, str], Depends(_form)]


def check_origin(request: Request) -> None:
    """A second line behind the token: a browser's Origin, when sent, must be this site."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise Forbidden(N_("the form came from another site; open the page again"))


def posted(action: str | None = None
           ) -> Callable[[Request, dict[str, str]], tuple[Operator, dict[str, str]]]:
    """A form dependency: the operator (as `need`) and the form, whose CSRF token must match."""
    page = need(action)

    def dependency(request: Request, form: Form) -> tuple[Operator, dict[str, str]]:
        op = page(request)
        sent = form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, op.csrf):
            raise Forbidden(N_("the form has expired or did not come from this site; open the "
                               "page again and resubmit"))
        check_origin(request)
        return op, form

    return dependency


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def meter_number(text: str | None, field: str = "meter") -> str:
    """The MeterPAN for what a cashier typed: the number printed on the meter (11- or 13-digit
    DRN) or the full 18-digit MeterPAN; spaces and dashes are ignored."""
    digits = "".join(ch for ch in (text or "") if ch not in " -")
    if not digits:
        raise InputError(N_("enter the meter number"), field=field)
    if not digits.isdigit():
        raise InputError(N_("the meter number has digits only; please re-read the meter "
                            "number"), field=field)
    try:
        if len(digits) in (11, 13):
            return MeterPan.from_drn(digits).pan
        if len(digits) == 18:
            return parse_pan(digits, field=field).pan
    except (InvalidDrn, InvalidPan):
        raise InputError(N_("the check digit does not match: please re-read the meter "
                            "number"), field=field) from None
    raise InputError(N_("a meter number has 11 or 13 digits (you typed {n}): please re-read "
                        "the meter number"), field=field, n=len(digits))


def typed_amount(web: Web, op: Operator, text: str | None, field: str = "amount",
                 label: str = N_("the amount")) -> str:
    """An amount as a person typed it in the utility's way ("R1 000", "50,00"), as the
    service's exact decimal string; refused naming `field`, in the operator's language, when
    it could be read two ways."""
    money = house_style(web.service.db)
    return money.plain(text, field=field, label=label,
                       _=i18n.gettext_for(money.locale, op.language))


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def period(request: Request, web: Web, days: int = 1) -> tuple[datetime, datetime]:
    """The [start, end) of the dates in the query (inclusive end date); default today."""
    today = web.now().date()

    def day(name: str, default: Any) -> Any:
        text = request.query_params.get(name, "")
        if not text:
            return default
        try:
            return datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            raise InputError(f"{name} must be a date (YYYY-MM-DD)", field=name) from None

    end = day("end", today)
    start = day("start", end - timedelta(days=days - 1))
    if start > end:
        raise InputError("the start date must not be after the end date", field="start")
    return (datetime.combine(start, datetime.min.time()),
            datetime.combine(end + timedelta(days=1), datetime.min.time()))
