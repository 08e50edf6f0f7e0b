"""Free basic units (FBE / BSST) claimed on their own, with a zero-value request.

A tariff may give each meter `free_units` per calendar month.  A paid sale already carries
them the first time in a month (the service plans an FBE token next to the credit token).  A
customer who buys nothing can still claim them: `claim` issues the FBE token alone, once a
month per meter, as a zero-amount sale (stored, reprintable, idempotent on its request id,
reversible).  The month's state is the same `meter_months.free_units` counter the sales use,
updated under the meter lock, so free units never come out twice in a month.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sts.errors import MeterBlocked, NoFreeUnitsDue
from sts.vending import audit, receipts
from sts.vending.service import SERVICES, Planned, check_request_id, request_hash
from sts.vending.tariff import ZERO, Quote, units_str

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from sts.vending.auth import Caller
    from sts.vending.service import MeterView, VendingService


def due_units(service: VendingService, conn: Connection, m: MeterView, now: datetime) -> Decimal:
    """The free units this meter may still get this month (0 if none or already issued)."""
    if m.tariff.free_units <= 0:
        return ZERO
    st = service._month_state(conn, m.id, now.strftime("%Y-%m"))
    return ZERO if st is not None and st.free_units > 0 else m.tariff.free_units


def claim(service: VendingService, request_id: str, pan: str,
          caller: Caller) -> tuple[dict[str, Any], bool]:
    """(answer, created): the FBE token alone, or the stored answer for a repeated id."""
    caller.require("purchase")
    check_request_id(request_id, "purchase_id")
    rhash = request_hash({"meter": pan, "amount": "0.00", "free_units": True,
                          "vendor": caller.vendor_id})
    now = service.now()
    month = now.strftime("%Y-%m")
    with service.db.begin() as conn:
        m = service.load_meter(conn, pan, lock=True)
        stored = service._stored(conn, request_id)
        if stored is not None:
            return service._repeat(stored, "sale", rhash, request_id), False
        if m.status != "active":
            raise MeterBlocked(f"meter {m.pan} is blocked: {m.status_reason}", field="meter")
        vendor = service._vendor(conn, caller, m.sgc_id)
        free = due_units(service, conn, m, now)
        if free <= 0:
            raise NoFreeUnitsDue(f"meter {m.pan} has no free units due in {month}",
                                 field="amount")
        kc = service.key_change_due(conn, m)
        plan = [Planned("FBE", 0, SERVICES.index(m.service), {"units": units_str(free)}, free,
                        "FREE BASIC UNITS")]
        res = service._issue(m, plan, kc, now)
        seq = service._next_seq(conn)
        q = Quote(amount=ZERO, fixed_charge=ZERO, debt=ZERO, debt_after=m.debt_balance,
                  energy_amount=ZERO, energy_net=ZERO, vat=ZERO, units=ZERO, free_units=free)
        toks = res.public()
        receipt = service._receipt(m=m, q=q, vendor=vendor, receipt_no=f"{seq:010d}", now=now,
                                   kc=kc, tokens_out=toks)
        response = {"purchase_id": request_id, "receipt": receipt, "tokens": toks,
                    "slip": receipts.slip(receipt, toks, title="FREE BASIC UNITS")}
        service._store(conn, seq=seq, request_id=request_id, kind="sale", m=m, caller=caller,
                       rhash=rhash, response=response, now=now, res=res, month=month)
        service._upsert_month(conn, m.id, month, ZERO, ZERO, free)
        audit.append(service.db, conn, at=now, actor=caller.actor, action="free_units",
                     subject=m.pan, details={"request_id": request_id, "units": str(free),
                                             "receipt_no": f"{seq:010d}"})
    out: dict[str, Any] = json.loads(json.dumps(response, default=str))
    return out, True
