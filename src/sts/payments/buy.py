"""The self-service page `/buy`: a customer buys a token from a phone with no sign-in.

    GET  /buy                  the meter number
    POST /buy/meter            the meter confirmed (customer masked) -> the amount
    POST /buy/quote            what the amount buys -> the phone number
    POST /buy/pay              an M-Pesa prompt on that phone -> /buy/wait/TICKET
    GET  /buy/wait/TICKET      the payment followed (htmx polls /buy/status/TICKET) to its token
    GET  /buy/mine             "my tokens": the meter number -> a one-time code by SMS
    POST /buy/mine/code        send the code to the number on record
    POST /buy/mine             the code -> the meter's recent tokens

It lives in the mobile-money face because paying is an M-Pesa Express prompt made with this
face's adapter; every rule is the service's (`sts.vending.usecases.selfservice`).  Each step
is a plain form (no script needed); the steps carry what came before in hidden fields and the
service checks all of it again at every step.  Errors are shown next to their field in plain
words.  The page acts as the channel's vendor, as a USSD session does.
"""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

import secrets
from collections.abc import Callable
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sts.codec.digits import group
from sts.codec.pan import printed_number
from sts.delivery.carriers import Accepted
from sts.delivery.config import DeliveryConfig
from sts.delivery.sms_http import send_text
from sts.errors import StsError, Unavailable
from sts.vending import i18n
from sts.vending import text as plain_text
from sts.vending.access.policy import Caller
from sts.vending.i18n import N_
from sts.vending.money_text import MoneyStyle, house_style
from sts.vending.service import VendingService

HERE = Path(__file__).parent
PATH = "/buy"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the wait page's address carries the ticket
    "Cache-Control": "no-store",
    "Vary": "Accept-Language",  # the words follow the browser's languages
}
FIELD_MAX = 64

# the service's refusals in a customer's words (by code); others show the service's message,
# translated when its words are in the catalogue
PLAIN = {
    "UNKNOWN_METER": N_("We do not know this meter number. Check the number printed on the "
                        "meter."),
    "invalid_meter_number": N_("This is not a meter number we know. Check the number printed "
                               "on the meter: 11 or 13 digits."),
    "METER_BLOCKED": N_("This meter cannot be sold to now. Please call the utility."),
    "AMOUNT_TOO_LOW": N_("The amount is below the lowest purchase for this meter."),
    "AMOUNT_TOO_HIGH": N_("The amount is above the highest purchase for this meter."),
    "PROVIDER_ERROR": N_("M-Pesa did not answer. Nothing was paid; please try again."),
    "UNAVAILABLE": N_("The service is busy. Nothing was paid; please try again."),
}
OTHER_SITE = N_("the form came from another site; open the page again")
NOT_FOUND = N_("We cannot find this payment. Start again.")
YOUR_PHONE = N_("your phone")
FINAL = ("sold", "exception", "cancelled")
# the language the template being rendered speaks (set by `Page.render`, read by `_()`)
LANGUAGE: ContextVar[str] = ContextVar("buy_language", default=i18n.SOURCE)


class Page:
    """The page's templates and its way to the service, as the channel's vendor."""

    def __init__(self, service: VendingService, caller: Any, ask: Any) -> None:
        self.service = service
        self._caller = caller  # () -> Caller, resolved on first use
        self.ask = ask  # the adapter's prompt call (Mpesa.initiate)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters["group4"] = group
        env.filters["printed"] = printed_number
        env.filters["money"] = lambda v, st: st.amount(v)
        env.filters["units"] = lambda v, st: st.units(v)
        i18n.install(env, LANGUAGE.get)
        self.sms = DeliveryConfig.load().sms

    def style(self, request: Request) -> MoneyStyle:
        """The utility's way of writing money, read once per request."""
        if not hasattr(request.state, "money"):
            request.state.money = house_style(self.service.db)
        found: MoneyStyle = request.state.money
        return found

    def language(self, request: Request) -> str:
        """The page's language, read once per request: the first one the customer's browser
        asks for that we speak (they are not signed in, so have no saved preference), else
        the utility's."""
        if not hasattr(request.state, "language"):
            asked = i18n.asked_language(request.headers.get("accept-language"))
            request.state.language = i18n.language_of(self.style(request).locale, asked)
        found: str = request.state.language
        return found

    def refusal(self, request: Request, exc: StsError) -> str:
        """A refusal of the service in the customer's words, language and money."""
        return plain(exc, self.words(request), self.style(request).amount)

    def words(self, request: Request) -> Callable[[str], str]:
        """The gettext of the page's language."""
        return i18n.translations(self.language(request)).gettext

    def caller(self) -> Caller:
        found: Caller = self._caller()
        return found

    def render(self, request: Request, name: str, status: int = 200,
               **ctx: Any) -> HTMLResponse:
        cur, lang = self.style(request), self.language(request)
        LANGUAGE.set(lang)  # the template renders here, in this thread and context
        ctx |= {"cur": cur, "lang": lang}
        resp = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        resp.headers.update(HEADERS)
        resp.headers["Content-Language"] = lang
        return resp

    def send(self, phone: str, message: str) -> None:
        outcome = send_text(self.sms, phone, message, f"sts-code-{secrets.token_hex(8)}")
        if not isinstance(outcome, Accepted):
            raise Unavailable(N_("we could not send the SMS now; please try again in a "
                                 "minute"), field="meter")


def plain(exc: StsError, _: Callable[[str], str],
          money: Callable[[Decimal], str] | None = None) -> str:
    """A refusal in a customer's words (`_`: the page language's gettext; `money`: the
    utility's way of writing an amount)."""
    known = PLAIN.get(exc.code)
    said = _(known) if known is not None else i18n.said(exc, _, money)
    return said[:1].upper() + said[1:]


async def form_of(request: Request) -> dict[str, str]:
    """The posted form: short plain-text fields only (anything else is dropped or refused),
    and only from this site (a browser's Origin, when sent, must be this host)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get(
            "host", ""):
        return {"_refused": OTHER_SITE}
    data = await request.form()
    out: dict[str, str] = {}
    for name, value in data.items():
        if not isinstance(value, str) or len(name) > 20:
            continue
        value = value.strip()[:FIELD_MAX]
        char = plain_text.bad_char(value)
        if char is not None:
            return {"_refused": plain_text.message(name, char)}
        out[name] = value
    return out


Form = Annotated[dict[str, str], Depends(form_of)]


def mount(app: FastAPI, service: VendingService, caller: Any, ask: Any) -> None:
    """Serve /buy on `app`: `caller()` is the channel's Caller, `ask` makes a prompt."""
    page = Page(service, caller, ask)
    app.mount(PATH + "/static", StaticFiles(directory=str(HERE / "static")), name="buy-static")
    if not hasattr(app.state, "error_renderers"):
        app.state.error_renderers = {}
    app.state.error_renderers[PATH] = lambda request, status, body: page.render(
        request, "buy/problem.html", status=status,
        message=page.words(request)(str(body.get("message", ""))))
    router = APIRouter(include_in_schema=False)

    def refused(request: Request, form: dict[str, str]) -> str:
        """Why the form was refused before the service saw it, in the page's language."""
        return page.words(request)(form["_refused"])

    def meter_step(request: Request, form: dict[str, str], *, error: str = "",
                   status: int = 200) -> HTMLResponse:
        return page.render(request, "buy/start.html", status=status, form=form, error=error)

    @router.get(PATH)
    def start(request: Request) -> HTMLResponse:
        return meter_step(request, {})

    def typed_meter(request: Request, form: Form) -> dict[str, Any] | HTMLResponse:
        """The meter the form names, or the first step again saying why not."""
        if "_refused" in form:
            return meter_step(request, {}, error=refused(request, form), status=403)
        try:
            return service.self_quote(form.get("meter", ""), None, page.caller())
        except StsError as exc:
            return meter_step(request, form, error=page.refusal(request, exc),
                              status=422)

    @router.post(PATH + "/meter")
    def meter(request: Request, form: Form) -> HTMLResponse:
        m = typed_meter(request, form)
        if isinstance(m, HTMLResponse):
            return m
        return page.render(request, "buy/amount.html", form=form, m=m, errors={})

    @router.post(PATH + "/quote")
    def quote(request: Request, form: Form) -> HTMLResponse:
        m = typed_meter(request, form)
        if isinstance(m, HTMLResponse):
            return m
        words = page.words(request)
        try:  # the amount as the utility writes it ("1 000,50"), as the service's decimal
            typed = page.style(request).plain(form.get("amount", ""), field="amount", _=words)
            q = service.self_quote(m["meter"], typed, page.caller())
        except StsError as exc:
            return page.render(request, "buy/amount.html", status=422, form=form, m=m,
                               errors={"amount": page.refusal(request, exc)})
        return page.render(request, "buy/phone.html", form=form, m=m, q=q, errors={})

    @router.post(PATH + "/pay", response_model=None)
    def pay(request: Request, form: Form) -> Response:
        if "_refused" in form:
            return meter_step(request, {}, error=refused(request, form), status=403)
        try:
            q = service.self_quote(form.get("meter", ""), form.get("amount", ""),
                                   page.caller())
        except StsError as exc:
            return meter_step(request, form, error=page.refusal(request, exc), status=422)
        try:
            out = service.self_prompt(q["meter"], form.get("amount", ""),
                                      form.get("phone", "").replace(" ", "").lstrip("+"),
                                      page.caller(), page.ask)
        except StsError as exc:
            field = "phone" if exc.field == "phone" else "pay"
            return page.render(request, "buy/phone.html", status=422, form=form, m=q, q=q,
                               errors={field: page.refusal(request, exc)})
        return RedirectResponse(f"{PATH}/wait/{out['ticket']}", status_code=303)

    def follow(request: Request, ticket: str, template: str) -> HTMLResponse:
        """The payment behind a ticket, whole page or the polled part of it."""
        try:
            s = service.self_follow(ticket, page.caller())
        except StsError:
            return page.render(request, "buy/problem.html", status=404,
                               message=page.words(request)(NOT_FOUND))
        return page.render(request, template, s=s, ticket=ticket, final=FINAL)

    @router.get(PATH + "/wait/{ticket}")
    def wait(request: Request, ticket: str) -> HTMLResponse:
        return follow(request, ticket, "buy/wait.html")

    @router.get(PATH + "/status/{ticket}")
    def status(request: Request, ticket: str) -> HTMLResponse:
        return follow(request, ticket, "buy/_status.html")

    @router.get(PATH + "/mine")
    def mine(request: Request) -> HTMLResponse:
        return page.render(request, "buy/mine.html", form={}, errors={}, sent=None)

    @router.post(PATH + "/mine/code")
    def mine_code(request: Request, form: Form) -> HTMLResponse:
        if "_refused" in form:
            return page.render(request, "buy/mine.html", status=403, form={}, sent=None,
                               errors={"meter": refused(request, form)})
        try:
            sent = service.send_access_code(form.get("meter", ""), page.caller(), page.send)
        except StsError as exc:
            return page.render(request, "buy/mine.html", status=422, form=form, sent=None,
                               errors={"meter": page.refusal(request, exc)})
        return page.render(request, "buy/mine.html", form=form, errors={}, sent=sent)

    @router.post(PATH + "/mine")
    def mine_tokens(request: Request, form: Form) -> HTMLResponse:
        if "_refused" in form:
            return page.render(request, "buy/mine.html", status=403, form={}, sent=None,
                               errors={"meter": refused(request, form)})
        try:
            out = service.my_tokens(form.get("meter", ""), form.get("code", ""),
                                    page.caller())
        except StsError as exc:
            field = "code" if exc.field == "code" else "meter"
            words = page.words(request)
            sent = {"sent_to": words(YOUR_PHONE)} if field == "code" else None
            return page.render(request, "buy/mine.html", status=422, form=form, sent=sent,
                               errors={field: page.refusal(request, exc)})
        return page.render(request, "buy/tokens.html", out=out)

    app.include_router(router)
