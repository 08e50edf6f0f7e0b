"""Advices: a switch or terminal saying that a sale's tokens reached the customer
(confirmation) or did not (reversal advice).  Both are idempotent; a sale is confirmed or
reversed once, whichever face asks first (`sts.vending.usecases.reversal`), and the later
request gets its face's "already confirmed / already reversed" answer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sts.errors import AdviceConflict, ReversalNotAllowed, UnknownRecord
from sts.vending import advices
from sts.vending.access.policy import Caller
from sts.vending.context import ServiceContext
from sts.vending.ledger import check_request_id
from sts.vending.storage.tables import transactions
from sts.vending.usecases import reversal

ALREADY_REVERSED = "already reversed"


def confirm(svc: ServiceContext, purchase_id: str, confirmation_id: str,
            caller: Caller) -> bool:
    """Mark the caller's sale confirmed: True the first time, False for a repeat; refused
    (ADVICE_CONFLICT) once the sale is reversed.  Redone whole when PostgreSQL gave the
    transaction up to another."""
    caller.require("confirm_advice")
    check_request_id(purchase_id, "purchase_id")
    return svc.db.retrying(lambda: _confirm(svc, purchase_id, confirmation_id, caller))


def _confirm(svc: ServiceContext, purchase_id: str, confirmation_id: str,
             caller: Caller) -> bool:
    t = transactions.c
    with svc.db.begin() as conn:
        sale = conn.execute(svc.db.locked(select(t.kind, t.status, t.vendor_id)
                                          .where(t.request_id == purchase_id))).first()
        if sale is None or sale.kind != "sale" or not caller.sees(sale.vendor_id):
            raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
        current = advices.state_in(conn, purchase_id)
        if sale.status == "reversed" or current in ("reversed", "reversing"):
            raise AdviceConflict(f"purchase {purchase_id} is {ALREADY_REVERSED}: it cannot be "
                                 "confirmed", field="purchase_id")
        if current == "confirmed":
            return False
        advices.mark_confirmed(conn, purchase_id, confirmation_id, svc.now())
    return True


def reverse(svc: ServiceContext, purchase_id: str, reversal_id: str, reason: str,
            caller: Caller) -> dict[str, Any]:
    """A reversal advice: reverse the caller's sale unless it was confirmed; a sale already
    reversed (by this advice or on another face) answers as reversed.  An advice for a purchase
    never seen (it may still be on its way) is remembered: that purchase is then refused
    (`sale.locked_sale`).  Another vendor's sale is answered alike and left untouched."""
    caller.require("reverse_advice")
    check_request_id(purchase_id, "purchase_id")
    with svc.db.begin() as conn:
        sale = conn.execute(svc.db.locked(select(transactions.c.seq)
                                          .where(transactions.c.request_id == purchase_id))).first()
        if sale is None:
            if advices.state_in(conn, purchase_id) is None:
                advices.mark_reversed(conn, purchase_id, reversal_id, reason, svc.now())
            return {"purchase_id": purchase_id, "status": "reversed", "sale": False}
    try:
        out, _created = reversal.reverse(svc, purchase_id, reason, caller,
                                          action="reverse_advice", reversal_id=reversal_id)
    except ReversalNotAllowed as exc:
        if ALREADY_REVERSED not in exc.message:
            raise
        out = {"purchase_id": purchase_id, "status": "reversed"}
    except UnknownRecord:  # another vendor's sale: answered as one never seen, untouched
        out = {"purchase_id": purchase_id, "status": "reversed", "sale": False}
    return out
