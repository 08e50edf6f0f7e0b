"""A key change set alone, inside the caller's transaction (key change campaigns)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from sts.delivery import outbox as delivery_outbox
from sts.vending import audit
from sts.vending.clock import local, utc, wall
from sts.vending.issue import KeyChange, issue
from sts.vending.ledger import Entry, entry_writes, next_seq, request_hash
from sts.vending.meters import MeterView

if TYPE_CHECKING:
    from sts.vending.service import VendingService


def key_change_meter(svc: VendingService, conn: Connection, m: MeterView, kc: KeyChange, *,
                     request_id: str, actor: str, reason: str) -> dict[str, Any]:
    hot = svc.hot
    now = local(svc.now(), m.time_zone)
    res = issue(svc.sm, m, [], kc, wall(now))
    cur = hot.cursor(conn)
    try:
        seq = next_seq(hot, cur)
        response = {"request_id": request_id, "receipt_no": f"{seq:010d}",
                    "type": "key_change", "reason": reason, "date": now.isoformat(),
                    "meter": m.describe(),
                    "key_change": {"to": kc.target(), "rollover": kc.ro},
                    "tokens": res.public()}
        _body, writes = entry_writes(hot, Entry(
            seq=seq, request_id=request_id, kind="key_change", meter=m,
            request_hash=request_hash({"request_id": request_id}), response=response,
            now=wall(now), issued=res, reason=reason))
        # token delivery: an AMI meter gets its key change pushed (jobs with the writes)
        writes += delivery_outbox.job_writes(request_id, txn_seq=seq, meter_id=m.id, ami=m.ami,
                                             wanted=[], now=hot.ts_in(utc(now)))
        hot.write(cur, writes)
    finally:
        cur.close()
    audit.append(svc.db, conn, at=svc.now(), actor=actor, action="key_change", subject=m.pan,
                 details={"request_id": request_id, "krn": kc.new_key.record.krn,
                          "ti": kc.new_ti})
    return response
