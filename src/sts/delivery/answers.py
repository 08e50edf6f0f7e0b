"""The meters' answers: a status message (sts/v1/meters/{pan}/status) moves its job to
accepted, rejected or delivered; an online message sends the meter's unanswered jobs again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from sts.vending import audit
from sts.vending.outbox import TERMINAL, attempt
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters
from sts.vending.storage.tables_delivery import deliveries

_HELD = frozenset({"key_change_1", "key_change_2"})  # a set waiting for its other tokens
_IN_METER = frozenset({"accept", "used"})  # the token's value is in the meter


def classify(results: list[dict[str, Any]]) -> tuple[str, str]:
    """(delivery status, reason) from the per-token results of one message.

    accepted: every token was taken (Accept), or is already in the meter (Used: a
    re-delivery, or the customer keyed it in first), with no key change set left open.
    delivered: the meter holds part of a key change set.  rejected: anything else; the
    reason names the first token the meter refused and its display."""
    if not results:
        return "rejected", "the meter answered without token results"
    for n, r in enumerate(results, 1):
        name = r.get("result")
        if name in _IN_METER or name in _HELD:
            continue
        return "rejected", (f"token {n} of {len(results)}: {r.get('display') or name} "
                            f"({name}, {r.get('token_status', '?')})")
    if results[-1].get("result") in _HELD:
        return "delivered", "key change set incomplete"
    return "accepted", ""


def apply_meter_status(db: Database, conn: Connection, pan: str, payload: dict[str, Any],
                       now: datetime) -> str | None:
    """A meter's status message (sts/v1/meters/{pan}/status) for one delivery; returns the
    job's status afterwards, or None when the message names no job of this meter.

    A job already accepted stays accepted (a `Used` answer to a re-delivery); a rejection
    is audited, so operators see it in the log as well as in GET /v1/deliveries."""
    msg_id = payload.get("id")
    results = payload.get("results")
    if not isinstance(msg_id, str) or not msg_id.isdigit() or len(msg_id) > 9 \
            or not isinstance(results, list):
        return None
    d = deliveries.c
    row = conn.execute(select(d.id, d.status, d.request_id, d.meter_result, meters.c.pan)
                       .join(meters, meters.c.id == d.meter_id)
                       .where(d.id == int(msg_id))).first()
    if row is None or row.pan != pan:
        return None
    status, reason = classify([r for r in results if isinstance(r, dict)])
    display = " / ".join(str(r.get("display", "")) for r in results if isinstance(r, dict))
    meter_result = {
        "token_status": payload.get("token_status") or (
            results[-1].get("token_status") if results and isinstance(results[-1], dict)
            else None),
        "display": display,
        "tokens": [{k: r.get(k) for k in ("position", "result", "code", "display",
                                           "token_status", "amount", "unit") if k in r}
                   for r in results if isinstance(r, dict)],
        "at": payload.get("at"),
    }
    detail = f"meter: {display}"
    if row.status == "accepted":
        attempt(conn, row.id, now, "meter", detail + " (already accepted)")
        return "accepted"
    if row.status in ("rejected", "failed") and status != "accepted":
        attempt(conn, row.id, now, "meter", detail)
        return str(row.status)
    values: dict[str, Any] = {"status": status, "meter_result": json.dumps(meter_result),
                              "lease_until": None, "updated_at": now, "delivered_at": now}
    if status in TERMINAL:
        values["done_at"] = now
        values["reason"] = reason[:500]
    conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(**values))
    attempt(conn, row.id, now, "meter", detail)
    if status == "rejected":
        audit.append(db, conn, at=now.replace(microsecond=0), actor=f"meter:{pan}",
                     action="delivery.rejected", subject=row.request_id,
                     details={"delivery": row.id, "reason": reason})
    return status


def meter_online(conn: Connection, pans: Sequence[str], now: datetime) -> int:
    """Meters announced themselves: their AMI jobs sent but not answered go again now."""
    if not pans:
        return 0
    ids = select(meters.c.id).where(meters.c.pan.in_(list(pans)))
    done = conn.execute(update(deliveries)
                        .where(deliveries.c.meter_id.in_(ids), deliveries.c.channel == "ami",
                               deliveries.c.status == "sent")
                        .values(next_at=now))
    return int(done.rowcount or 0)
