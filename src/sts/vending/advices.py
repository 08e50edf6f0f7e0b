"""The advice state of a sale: `confirmed` (its tokens reached the customer, as a switch's
confirmation advice or a terminal says) or `reversed`, one row per sale (`sale_advices`).

The rules that change it are the use cases' (`sts.vending.usecases.advice` and `.reversal`);
both hold the sale's transaction row locked while they read and write this row, so a sale is
confirmed or reversed once, on whichever face asks first.  Rows in the `reversing` state were
left by earlier versions (which reversed in two steps) and count as not confirmed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from sts.vending.storage.database import Database
from sts.vending.storage.tables_clients import sale_advices


def state_in(conn: Connection, purchase_id: str) -> str | None:
    """The advice state of a sale inside the caller's transaction (None: no advice yet)."""
    value: str | None = conn.scalar(select(sale_advices.c.state)
                                    .where(sale_advices.c.purchase_id == purchase_id))
    return value


def _put(conn: Connection, purchase_id: str, values: dict[str, Any]) -> None:
    found = conn.scalar(select(sale_advices.c.purchase_id)
                        .where(sale_advices.c.purchase_id == purchase_id))
    if found is None:
        conn.execute(insert(sale_advices).values(purchase_id=purchase_id,
                                                 **{"reason": ""} | values))
    else:
        conn.execute(update(sale_advices).where(sale_advices.c.purchase_id == purchase_id)
                     .values(**values))


def mark_confirmed(conn: Connection, purchase_id: str, confirmation_id: str,
                   now: datetime) -> None:
    _put(conn, purchase_id, {"state": "confirmed", "confirmation_id": confirmation_id,
                             "updated_at": now})


def mark_reversed(conn: Connection, purchase_id: str, reversal_id: str, reason: str,
                  now: datetime) -> None:
    _put(conn, purchase_id, {"state": "reversed", "reversal_id": reversal_id[:64],
                             "reason": reason[:300], "updated_at": now})


def state(db: Database, purchase_id: str) -> dict[str, Any] | None:
    with db.read() as conn:
        row = conn.execute(select(sale_advices)
                           .where(sale_advices.c.purchase_id == purchase_id)).first()
    if row is None:
        return None
    return {"state": row.state, "confirmation_id": row.confirmation_id,
            "reversal_id": row.reversal_id, "reason": row.reason,
            "at": row.updated_at.isoformat()}
