"""Who may sell, and the vendor's float: the rules a sale and a trial both apply.

The float is checked here for a clear message, and taken by a conditional UPDATE
(`hotsql.VENDOR_FLOAT`, `float_balance >= amount`) as the sale's last write, whose failure
rolls the whole sale back: two concurrent sales can never overdraw it.
"""

from __future__ import annotations

from decimal import Decimal

from sts.errors import InsufficientFloat, MeterBlocked, NotAuthorised
from sts.vending.access.policy import Caller
from sts.vending.i18n import N_
from sts.vending.meters import MeterView, VendorView
from sts.vending.tariff import cents


def check_may_sell(caller: Caller, m: MeterView) -> VendorView:
    """The caller's vendor, if it may sell to this meter now (meter `m` read with the caller's
    vendor id)."""
    if m.status != "active":
        raise MeterBlocked(N_("meter {pan} is blocked: {reason}"), field="meter", pan=m.pan,
                           reason=m.status_reason)
    if caller.vendor_id is None or m.vendor is None:
        raise NotAuthorised(N_("this API key is not bound to a vendor, so it cannot sell"),
                            field="authorization")
    if m.vendor.status != "active":
        raise NotAuthorised(N_("the vendor is suspended"), field="authorization")
    if not m.vendor.authorised:
        raise NotAuthorised(N_("the vendor is not authorised for this meter's supply group"),
                            field="meter")
    return m.vendor


def check_float(vendor: VendorView, amount: Decimal) -> None:
    if vendor.float_balance < amount:
        raise InsufficientFloat(N_("the vendor's float ({float}) does not cover {amount}"),
                                field="amount", float=cents(vendor.float_balance),
                                amount=cents(amount))


def float_not_covered() -> InsufficientFloat:
    """What a sale raises when the conditional float UPDATE changed no row."""
    return InsufficientFloat(N_("the vendor's float does not cover this sale"), field="amount")
