"""The meters' answers: a status message (sts/v1/meters/{pan}/status) moves its job to
accepted, rejected or delivered; an online message sends the meter's unanswered jobs again.

A status message comes from outside and names a job by its id, which is sequential and
appears in every tokens message, so it is believed only as far as it can be true: a meter
answers for its OWN AMI jobs, only once they were sent to it, and only forward (sent ->
delivered -> accepted | rejected; never back from accepted or rejected, never straight
from pending).  What is stored of it is bounded and of plain types.
"""

from __future__ import annotations

import json
import math
import re
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
# The answer names a job that a dispatcher is sending right now (claimed, not yet recorded
# as sent): a fast meter answers before the send is written.  The caller keeps the message
# and applies it again once the send is recorded.
IN_FLIGHT = "in_flight"
MAX_RESULTS = 32  # tokens in one answer (a sale has at most a key change set and a credit)
_JOB_ID = re.compile(r"[0-9]{1,9}")
_RESULT_KEYS = ("position", "result", "code", "display", "token_status", "amount", "unit")
# the statuses a meter's answer may move a job out of (a failed job only if it was sent:
# a late answer that the tokens are in the meter is still the truth)
_ANSWERABLE = ("sent", "delivered", "failed")


def _plain(value: Any, limit: int = 64) -> Any:
    """A result field as stored: a short string, a number or a flag; anything else None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**15 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:limit]
    return None


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
    job's status afterwards, IN_FLIGHT for a job still being sent, or None when the message
    names no job this meter may answer (another meter's, another channel's, one not sent).

    A job already accepted or rejected stays so (a `Used` answer to a re-delivery changes
    nothing); a rejection is audited, so operators see it in the log as well as in
    GET /v1/deliveries."""
    msg_id = payload.get("id")
    raw = payload.get("results")
    if not isinstance(msg_id, str) or not _JOB_ID.fullmatch(msg_id) \
            or not isinstance(raw, list) or len(raw) > MAX_RESULTS:
        return None
    d = deliveries.c
    row = conn.execute(select(d.id, d.status, d.channel, d.request_id, d.sent_at,
                              d.lease_until, meters.c.pan)
                       .join(meters, meters.c.id == d.meter_id)
                       .where(d.id == int(msg_id))).first()
    if row is None or row.pan != pan or row.channel != "ami":
        return None
    if row.status == "pending":  # never sent: unless it is going out this moment
        live = row.lease_until is not None and row.lease_until > now
        return IN_FLIGHT if live else None
    if row.status not in _ANSWERABLE or (row.status == "failed" and row.sent_at is None):
        return str(row.status)  # accepted / rejected stay; a failed job never sent: no answer
    results = [{k: _plain(r[k]) for k in _RESULT_KEYS if k in r}
               for r in raw if isinstance(r, dict)]
    status, reason = classify(results)
    if row.status == "failed" and status != "accepted":
        return "failed"  # only the news that the tokens are in the meter changes a failure
    display = " / ".join(str(r.get("display") or "") for r in results)[:500]
    meter_result = {
        "token_status": _plain(payload.get("token_status")) or (
            results[-1].get("token_status") if results else None),
        "display": display,
        "tokens": results,
        "at": _plain(payload.get("at")),
    }
    values: dict[str, Any] = {"status": status, "meter_result": json.dumps(meter_result),
                              "lease_until": None, "updated_at": now, "delivered_at": now}
    if status in TERMINAL:
        values["done_at"] = now
        values["reason"] = reason[:500]
    done = conn.execute(update(deliveries)
                        .where(deliveries.c.id == row.id, deliveries.c.status == row.status)
                        .values(**values))
    if not done.rowcount:  # another writer moved it meanwhile: its word stands
        return None
    attempt(conn, row.id, now, "meter", f"meter: {display}")
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
