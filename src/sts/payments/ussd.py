"""The USSD menu (Africa's Talking): each request carries every input of the session so far
in `text`, joined by `*`; the answer is plain text, `CON` (more to come) or `END`, at most 182
characters per screen.  The menu is stateless: the path through it is the text itself.

    1 check a meter    -> meter number -> the meter and its customer, masked
    2 buy a token      -> meter number -> amount -> confirm -> an M-Pesa prompt on this phone
    3 resend my token  -> the last token this phone paid for, by SMS to this phone
    4 report a fault   -> meter number -> what is wrong -> a reference to quote

The screens speak the utility's language (its locale, as the self-service page) and write
its money its way; `CON`/`END` and the menu's digits are the protocol's and stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sts.errors import StsError
from sts.payments.mpesa import Mpesa
from sts.vending import i18n
from sts.vending.access.policy import Caller
from sts.vending.i18n import N_
from sts.vending.money_text import MoneyStyle, house_style
from sts.vending.service import VendingService

SCREEN_MAX = 182
MENU = N_("Prepaid electricity\n1. Check a meter\n2. Buy a token\n3. Resend my last token\n"
          "4. Report a fault")
FAULTS = {"1": "no_power", "2": "token_rejected", "3": "meter_damaged", "4": "other"}
FAULT_MENU = N_("1. No power\n2. Token not accepted\n3. Meter damaged\n4. Something else")
ENTER_METER = N_("Enter the meter number")
Words = Callable[[str], str]


def fit(screen: str) -> str:
    """A screen cut to the 182 characters a handset shows."""
    return screen if len(screen) <= SCREEN_MAX else screen[:SCREEN_MAX - 3] + "..."


def _refusal(exc: StsError, _: Words, money: Callable[[Decimal], str]) -> str:
    if exc.code in ("UNKNOWN_METER", "invalid_meter_number", "INVALID_METER_NUMBER"):
        return "END " + _("That meter number is not known. Check the number printed on the "
                          "meter.")
    return "END " + _("Sorry: {reason}").format(reason=i18n.said(exc, _, money))


def answer(service: VendingService, caller: Caller, mpesa: Mpesa, phone: str,
           text: str, session: str = "") -> str:
    """The next screen for the session's inputs so far."""
    cur = house_style(service.db)
    _ = i18n.gettext_for(cur.locale)
    steps = [s.strip() for s in text.split("*")] if text else []
    try:
        if steps and steps[0] == "4":
            return fit(_fault(service, caller, phone, session, steps[1:], _))
        return fit(_screen(service, caller, mpesa, phone, steps, cur, _))
    except StsError as exc:
        return fit(_refusal(exc, _, cur.amount))


def _screen(service: VendingService, caller: Caller, mpesa: Mpesa, phone: str,
            steps: list[str], cur: MoneyStyle, _: Words) -> str:
    if not steps:
        return "CON " + _(MENU)
    choice, rest = steps[0], steps[1:]
    if choice == "3" and not rest:
        out = service.resend_last_payment(phone, caller)
        return "END " + _("Your last token (meter {meter}, {amount}) is being sent to this "
                          "phone by SMS.").format(meter=out["meter"], amount=out["amount"])
    if choice not in ("1", "2"):
        return "END " + _("Please choose 1, 2, 3 or 4.")
    if not rest:
        return "CON " + _(ENTER_METER)
    m = service.describe_meter(rest[0], caller)
    low, high = cur.amount(m["min_amount"]), cur.amount(m["max_amount"])
    if choice == "1":
        limits = (_("{low} to {high}").format(low=low, high=high) if m["max_amount"]
                  else low)
        return "END " + _("Meter {meter}\nCustomer: {customer}\nPurchases: {limits}").format(
            meter=m["meter"], customer=m["customer"], limits=limits)
    if len(rest) == 1:
        return "CON " + _("Meter {meter} ({customer})\nEnter the amount ({low} to {high})"
                          ).format(meter=m["meter"], customer=m["customer"], low=low,
                                   high=high or _("any"))
    amount = rest[1]
    verdict = service.validate_payment(m["meter"], amount, caller)
    if verdict.outcome != "ok":
        why = i18n.said(verdict.error, _, cur.amount) if verdict.error else verdict.reason
        return "END " + _("Sorry: {reason}").format(reason=why)
    if len(rest) == 2:
        return "CON " + _("Pay {amount} for meter {meter}?\n1. Yes, send the M-Pesa prompt\n"
                          "2. No").format(amount=cur.amount(amount), meter=m["meter"])
    if rest[2] != "1":
        return "END " + _("Cancelled. Nothing was paid.")
    if len(rest) > 3:
        return "END " + _("Please start again.")
    service.prompt_payment(m["meter"], amount, phone.lstrip("+"), caller, mpesa.initiate)
    return "END " + _("Enter your M-Pesa PIN when asked on this phone. Your token will come "
                      "by SMS.")


def _fault(service: VendingService, caller: Caller, phone: str, session: str,
           rest: list[str], _: Words) -> str:
    """4: meter -> what is wrong -> the report stored (once per session) and its reference."""
    if not rest:
        return "CON " + _(ENTER_METER)
    m = service.fault_meter(rest[0], caller)
    if len(rest) == 1:
        return "CON " + _("Meter {meter} ({customer})\nWhat is wrong?").format(
            meter=m["meter"], customer=m["customer"]) + "\n" + _(FAULT_MENU)
    if len(rest) > 2 or rest[1] not in FAULTS:
        return "END " + _("Please start again and choose 1 to 4.")
    out = service.report_fault(session, m["meter"], FAULTS[rest[1]], phone, caller)
    return "END " + _("Fault reported. Your reference is {reference}. The utility will contact "
                      "you on this phone.").format(reference=out["reference"])
