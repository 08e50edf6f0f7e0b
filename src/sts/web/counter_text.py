"""What a cashier reads at the counter: the service's refusals and delivery states in the words
of the counter.

A cashier never sees server configuration, the back office's internal notes or an 18-digit
MeterPAN where they typed the number printed on the meter: those stay in the log, the
delivery rows and the back office's pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from sts.codec.pan import printed_number
from sts.errors import StsError
from sts.vending.i18n import N_, said

BLOCKED = N_("This meter is blocked: refer the customer to the utility office")
PAN = re.compile(r"\b\d{18}\b")
# what a delivery's state means for the customer in front of the cashier
DELIVERY = {
    "pending": N_("Being sent"),
    "sent": N_("Sent: waiting for the meter's answer"),
    "delivered": N_("Delivered"),
    "accepted": N_("The meter took the token"),
    "rejected": N_("The meter refused the token: the customer enters the printed token"),
    "failed": N_("Not delivered: give the customer the printed token"),
}
NOT_HERE = {
    "ami": N_("AMI delivery is not available here; give the customer the printed token"),
    "sms": N_("SMS delivery is not available here; give the customer the printed token"),
    "email": N_("E-mail delivery is not available here; give the customer the printed token"),
}


def printed(text: str) -> str:
    """`text` with every MeterPAN written as the number printed on the meter."""
    return PAN.sub(lambda m: printed_number(m.group(0)), text)


def _same(text: str) -> str:
    return text


def refusal(exc: StsError, _: Callable[[str], str] = _same,
            money: Callable[[Decimal], str] | None = None) -> str:
    """The message a cashier sees for a refusal of the service (in their language, `_`, its
    amounts the utility's way, `money`)."""
    if exc.code == "METER_BLOCKED":
        return _(BLOCKED)
    return printed(said(exc, _, money))


def delivery(status: str, channel: str, reason: str | None, display: str | None,
             _: Callable[[str], str] = _same) -> str:
    """A delivery's state for the cashier: the meter's display when it answered, else what the
    state means; a channel this server does not run is said as such, without its settings."""
    if display and status in ("accepted", "rejected"):
        return _("%(state)s (the meter shows %(display)s)") % {"state": _(DELIVERY[status]),
                                                                "display": display}
    if reason and "carrier runs" in reason and status in ("pending", "failed"):
        return _(NOT_HERE.get(channel, DELIVERY["failed"]))
    return _(DELIVERY[status]) if status in DELIVERY else status
