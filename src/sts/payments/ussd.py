"""The USSD menu (Africa's Talking): each request carries every input of the session so far
in `text`, joined by `*`; the answer is plain text, `CON` (more to come) or `END`, at most 182
characters per screen.  The menu is stateless: the path through it is the text itself.

    1 check a meter    -> meter number -> the meter and its customer, masked
    2 buy a token      -> meter number -> amount -> confirm -> an M-Pesa prompt on this phone
    3 resend my token  -> the last token this phone paid for, by SMS to this phone
    4 report a fault   -> meter number -> what is wrong -> a reference to quote
"""

from __future__ import annotations

from sts.errors import StsError
from sts.payments.mpesa import Mpesa
from sts.vending.access.policy import Caller
from sts.vending.service import VendingService

SCREEN_MAX = 182
MENU = ("CON Prepaid electricity\n1. Check a meter\n2. Buy a token\n"
        "3. Resend my last token\n4. Report a fault")
FAULTS = {"1": "no_power", "2": "token_rejected", "3": "meter_damaged", "4": "other"}
FAULT_MENU = ("1. No power\n2. Token not accepted\n3. Meter damaged\n4. Something else")


def fit(screen: str) -> str:
    """A screen cut to the 182 characters a handset shows."""
    return screen if len(screen) <= SCREEN_MAX else screen[:SCREEN_MAX - 3] + "..."


def _refusal(exc: StsError) -> str:
    if exc.code in ("UNKNOWN_METER", "invalid_meter_number", "INVALID_METER_NUMBER"):
        return "END That meter number is not known. Check the number printed on the meter."
    return f"END Sorry: {exc.message}"


def answer(service: VendingService, caller: Caller, mpesa: Mpesa, phone: str,
           text: str, session: str = "") -> str:
    """The next screen for the session's inputs so far."""
    steps = [s.strip() for s in text.split("*")] if text else []
    try:
        if steps and steps[0] == "4":
            return fit(_fault(service, caller, phone, session, steps[1:]))
        return fit(_screen(service, caller, mpesa, phone, steps))
    except StsError as exc:
        return fit(_refusal(exc))


def _screen(service: VendingService, caller: Caller, mpesa: Mpesa, phone: str,
            steps: list[str]) -> str:
    if not steps:
        return MENU
    choice, rest = steps[0], steps[1:]
    if choice == "3" and not rest:
        out = service.resend_last_payment(phone, caller)
        return (f"END Your last token (meter {out['meter']}, {out['amount']}) is being sent "
                "to this phone by SMS.")
    if choice not in ("1", "2"):
        return "END Please choose 1, 2, 3 or 4."
    if not rest:
        return "CON Enter the meter number"
    m = service.describe_meter(rest[0], caller)
    if choice == "1":
        limits = f"{m['currency']} {m['min_amount']}" + (
            f" to {m['max_amount']}" if m["max_amount"] else "")
        return f"END Meter {m['meter']}\nCustomer: {m['customer']}\nPurchases: {limits}"
    if len(rest) == 1:
        return (f"CON Meter {m['meter']} ({m['customer']})\n"
                f"Enter the amount ({m['min_amount']} to {m['max_amount'] or 'any'})")
    amount = rest[1]
    verdict = service.validate_payment(m["meter"], amount, caller)
    if verdict.outcome != "ok":
        return f"END Sorry: {verdict.reason}"
    if len(rest) == 2:
        return (f"CON Pay {m['currency']} {amount} for meter {m['meter']}?\n"
                "1. Yes, send the M-Pesa prompt\n2. No")
    if rest[2] != "1":
        return "END Cancelled. Nothing was paid."
    if len(rest) > 3:
        return "END Please start again."
    service.prompt_payment(m["meter"], amount, phone.lstrip("+"), caller, mpesa.initiate)
    return ("END Enter your M-Pesa PIN when asked on this phone. "
            "Your token will come by SMS.")


def _fault(service: VendingService, caller: Caller, phone: str, session: str,
           rest: list[str]) -> str:
    """4: meter -> what is wrong -> the report stored (once per session) and its reference."""
    if not rest:
        return "CON Enter the meter number"
    m = service.fault_meter(rest[0], caller)
    if len(rest) == 1:
        return f"CON Meter {m['meter']} ({m['customer']})\nWhat is wrong?\n{FAULT_MENU}"
    if len(rest) > 2 or rest[1] not in FAULTS:
        return "END Please start again and choose 1 to 4."
    out = service.report_fault(session, m["meter"], FAULTS[rest[1]], phone, caller)
    return (f"END Fault reported. Your reference is {out['reference']}. "
            "The utility will contact you on this phone.")
