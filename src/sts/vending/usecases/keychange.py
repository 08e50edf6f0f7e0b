"""A key change set alone, inside the caller's transaction (key change campaigns).

One authority for what a key change stores: `issue_key_change` makes one meter's tokens and
`key_change_rows` the rows to store (transaction, tokens, the meter's new state), neither
touching the database.  `key_change_meter` (one meter) and the campaign's chunks (many meters,
written in bulk) both store what they return, write the same audit entry (`audit_details`)
and call the same after-issue hook (`after_key_changes`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from sts.vending import audit
from sts.vending.clock import local, wall
from sts.vending.issue import IssueResult, KeyChange, issue
from sts.vending.ledger import Entry, Writes, entry_writes, next_seq, request_hash
from sts.vending.meters import MeterView

if TYPE_CHECKING:
    from sts.vending.service import VendingService


def issue_key_change(svc: VendingService, m: MeterView, kc: KeyChange,
                     now: datetime) -> IssueResult:
    """Make one meter's key change set (`now`: the service clock, naive UTC).  Raises an
    StsError before anything is stored when the set cannot be issued."""
    return issue(svc.sm, m, [], kc, wall(local(now, m.time_zone)))


def key_change_rows(svc: VendingService, m: MeterView, kc: KeyChange, res: IssueResult, *,
                    seq: int, request_id: str, reason: str,
                    now: datetime) -> tuple[dict[str, Any], Writes]:
    """The answer and the writes (transaction, tokens, the meter's new state) of an issued
    key change set stored as receipt `seq`."""
    at = local(now, m.time_zone)
    response = {"request_id": request_id, "receipt_no": f"{seq:010d}",
                "type": "key_change", "reason": reason, "date": at.isoformat(),
                "meter": m.describe(),
                "key_change": {"to": kc.target(), "rollover": kc.ro},
                "tokens": res.public()}
    _body, writes = entry_writes(svc.hot, Entry(
        seq=seq, request_id=request_id, kind="key_change", meter=m,
        request_hash=request_hash({"request_id": request_id}), response=response,
        now=wall(at), issued=res, reason=reason))
    return response, writes


def audit_details(request_id: str, kc: KeyChange) -> dict[str, Any]:
    return {"request_id": request_id, "krn": kc.new_key.record.krn, "ti": kc.new_ti}


def after_key_changes(svc: VendingService, conn: Connection,
                      issued: list[tuple[MeterView, dict[str, Any]]]) -> None:
    """Called once per stored batch of key changes (one meter, or a campaign chunk), inside
    its transaction: the place for work that follows a key change (e.g. queueing delivery to
    AMI meters).  Nothing follows a key change yet."""
    del svc, conn, issued


def key_change_meter(svc: VendingService, conn: Connection, m: MeterView, kc: KeyChange, *,
                     request_id: str, actor: str, reason: str) -> dict[str, Any]:
    hot = svc.hot
    now = svc.now()
    cur = hot.cursor(conn)
    try:
        res = issue_key_change(svc, m, kc, now)
        seq = next_seq(hot, cur)
        response, writes = key_change_rows(svc, m, kc, res, seq=seq, request_id=request_id,
                                           reason=reason, now=now)
        hot.write(cur, writes)
    finally:
        cur.close()
    after_key_changes(svc, conn, [(m, response)])
    audit.append(svc.db, conn, at=now, actor=actor, action="key_change", subject=m.pan,
                 details=audit_details(request_id, kc))
    return response
