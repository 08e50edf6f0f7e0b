"""Free basic units claimed on their own, with a zero-value request (the interface's BSST).

A tariff may give each meter `free_units` per calendar month; a paid sale already carries them
the first time in a month.  A customer who buys nothing can still claim them: the claim is a
sale of nothing (`sale.locked_sale` and `sale.issue_sale`: stored, reprintable, idempotent on
its request id, reversible) whose quote holds only the month's free units
(`tariff.free_units_quote`, the same rule a paid sale applies).  The month's free-units total
is read after the meter lock, so free units never come out twice in a month.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sts.errors import NoFreeUnitsDue
from sts.vending.access.policy import Caller
from sts.vending.ledger import request_hash
from sts.vending.meters import MeterView, meter_pan
from sts.vending.storage.statements import Row
from sts.vending.tariff import free_units_quote
from sts.vending.usecases import lookup
from sts.vending.usecases.sale import issue_sale, locked_sale, month_total
from sts.vending.vendor import check_may_sell

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext

TITLE = "FREE BASIC UNITS"


def claim(svc: ServiceContext, request_id: str, meter: object,
          caller: Caller) -> tuple[dict[str, Any], bool]:
    """(answer, created): the free-units token alone, or the stored answer for a repeated id;
    NoFreeUnitsDue when the tariff has none or this month's were already issued."""
    def identify(who: Caller) -> tuple[str, str]:
        pan = meter_pan(meter)
        return pan, request_hash({"meter": pan, "amount": "0.00", "free_units": True,
                                  "vendor": who.vendor_id})

    def sell(cur: Any, m: MeterView, after: Row, who: Caller, rhash: str,
             now: datetime) -> str:
        vendor = check_may_sell(who, m)
        q = free_units_quote(m.tariff, debt_balance=m.debt_balance,
                             free_issued=month_total(after, "month_free_units",
                                                     svc.hot.money_out))
        if q.free_units <= 0:
            raise NoFreeUnitsDue(f"meter {m.pan} has no free units due in "
                                 f"{now:%Y-%m}", field="amount")
        return issue_sale(svc, cur, request_id, m, q, seq=int(after["next_seq"]), rhash=rhash,
                          caller=who, vendor=vendor, now=now, title=TITLE)

    text, created = locked_sale(svc, request_id, caller, None, identify, sell)
    out: dict[str, Any] = json.loads(text)
    return out, created


def trial(svc: ServiceContext, meter: object, caller: Caller) -> dict[str, Any]:
    """What a claim would answer now, without a token and storing nothing (the trial of a
    zero-value request); NoFreeUnitsDue as the claim would say it.  Read through the lookup,
    so it is rate-limited as every read of customer data is."""
    look = lookup.lookup(svc, meter, caller)
    if Decimal(look["free_units_due"]) <= 0:
        raise NoFreeUnitsDue(f"meter {look['meter']['pan']} has no free units due",
                             field="amount")
    receipt = {"receipt_no": "", "utility": look["utility"], "meter": look["meter"],
               "customer": look["customer"], "amount": "0", "steps": [],
               "energy_net": "0", "energy_amount": "0", "vat": {"rate": "0", "amount": "0"}}
    return {"receipt": receipt, "slip": "",
            "tokens": [{"kind": "FBE", "units": look["free_units_due"], "token": None}]}
