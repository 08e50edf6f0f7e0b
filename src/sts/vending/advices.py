"""Confirmations and reversals of sales (the advices of a dual-message switch).

A sale's advice state is one row: `confirmed`, or `reversing` then `reversed`.  The row is
locked while it changes, so a confirmation and a reversal of the same sale racing each other
are decided one way: a reversal is refused once the sale is confirmed, and a confirmation is
refused once a reversal has started.  The reversal itself is the service's (`reverse`): the
sale is marked reversed with the reason, the vendor's float is given back, and the TIDs stay
used, because an STS token cannot be revoked.  Advices are idempotent: repeating one changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from sts.errors import AdviceConflict, ReversalNotAllowed, VendingError
from sts.vending.db import Database
from sts.vending.switch_models import sale_advices

if TYPE_CHECKING:
    from sts.vending.auth import Caller
    from sts.vending.service import VendingService


def _locked_state(db: Database, conn: Connection, purchase_id: str) -> Any:
    return conn.execute(db.locked(select(sale_advices)
                                  .where(sale_advices.c.purchase_id == purchase_id))).first()


def _upsert(db: Database, purchase_id: str, now: datetime,
            decide: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any]:
    """Run `decide(row) -> values | None` under the row lock; insert or update the row."""
    for _ in range(3):
        try:
            with db.begin() as conn:
                row = _locked_state(db, conn, purchase_id)
                values: dict[str, Any] | None = decide(row)
                if values is None:
                    kept: dict[str, Any] = dict(row._mapping) if row is not None else {}
                    return kept
                values["updated_at"] = now
                if row is None:
                    conn.execute(insert(sale_advices).values(purchase_id=purchase_id,
                                                             **{"reason": ""} | values))
                else:
                    conn.execute(update(sale_advices)
                                 .where(sale_advices.c.purchase_id == purchase_id)
                                 .values(**values))
                return {"purchase_id": purchase_id} | values
        except IntegrityError:  # a concurrent first advice inserted the row: decide again
            continue
    raise VendingError("advice state kept changing; repeat the advice", field="requestId")


def confirm(db: Database, purchase_id: str, confirmation_id: str, now: datetime) -> bool:
    """Mark a sale confirmed; True the first time, False for a repeat.  Refused once reversed."""
    first = [False]

    def decide(row: Any) -> dict[str, Any] | None:
        if row is None:
            first[0] = True
            return {"state": "confirmed", "confirmation_id": confirmation_id}
        if row.state == "confirmed":
            return None
        raise AdviceConflict(f"purchase {purchase_id} is {row.state}: it cannot be confirmed",
                             field="requestId")

    _upsert(db, purchase_id, now, decide)
    return first[0]


def reverse(service: VendingService, purchase_id: str, reversal_id: str, reason: str,
            caller: Caller) -> dict[str, Any]:
    """Reverse a sale unless it was confirmed; the service gives the float back."""
    now = service.now()
    service.get_purchase(purchase_id, caller)  # a vendor reverses only its own sales

    def start(row: Any) -> dict[str, Any] | None:
        if row is not None and row.state == "confirmed":
            raise ReversalNotAllowed(f"purchase {purchase_id} was confirmed: it cannot be "
                                     "reversed", field="requestId")
        if row is not None and row.state == "reversed":
            return None
        return {"state": "reversing", "reversal_id": reversal_id, "reason": reason[:300]}

    _upsert(service.db, purchase_id, now, start)
    try:
        out, _created = service.reverse(purchase_id, reason, caller, action="reverse_advice")
    except ReversalNotAllowed as exc:
        if "already reversed" not in exc.message:
            with service.db.begin() as conn:  # refused for good: the sale stands
                conn.execute(delete(sale_advices).where(
                    sale_advices.c.purchase_id == purchase_id,
                    sale_advices.c.state == "reversing"))
            raise
        out = {"purchase_id": purchase_id, "status": "reversed"}
    with service.db.begin() as conn:
        conn.execute(update(sale_advices).where(sale_advices.c.purchase_id == purchase_id)
                     .values(state="reversed", updated_at=now))
    return out


def state(db: Database, purchase_id: str) -> dict[str, Any] | None:
    with db.read() as conn:
        row = conn.execute(select(sale_advices)
                           .where(sale_advices.c.purchase_id == purchase_id)).first()
    if row is None:
        return None
    return {"state": row.state, "confirmation_id": row.confirmation_id,
            "reversal_id": row.reversal_id, "reason": row.reason,
            "at": row.updated_at.isoformat()}
