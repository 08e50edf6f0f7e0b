"""Key change sets alone: inside the caller's transaction (key change campaigns), or asked for
by a point of sale without a purchase (`request_tokens`, the interface's key change token
request).

One authority for what a key change stores: `issue_key_change` makes one meter's tokens and
`key_change_rows` the rows to store (transaction, tokens, the meter's new state), neither
touching the database.  `key_change_meter` (one meter) and the campaign's chunks (many meters,
written in bulk) both store what they return, write the same audit entry (`audit_details`)
and call the same after-issue hook (`after_key_changes`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from sts.errors import NoKeyChangeDue, StsError
from sts.vending import audit
from sts.vending import outbox as delivery_outbox
from sts.vending.access.policy import Caller
from sts.vending.clock import local, utc, wall
from sts.vending.issue import IssueResult, KeyChange, due_key_change, issue, key_change_item
from sts.vending.ledger import (
    Entry,
    Writes,
    check_request_id,
    entry_writes,
    next_seq,
    stored,
)
from sts.vending.meters import MeterView, read_meter
from sts.vending.storage.tables import transactions
from sts.vending.vendor import check_may_sell

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def _identity(request_id: str) -> str:
    """The request hash of a key change: of its request id alone."""
    return hashlib.sha256(audit.canonical_plain({"request_id": request_id}).encode()).hexdigest()


@lru_cache(maxsize=64)
def _times(now: datetime, time_zone: str) -> tuple[datetime, str, datetime, datetime]:
    """(local time, its ISO text, its wall time, UTC) of the service clock's `now` in a
    zone: the same for every meter of a chunk."""
    at = local(now, time_zone)
    return at, at.isoformat(), wall(at), utc(at)


def issue_key_change(svc: ServiceContext, m: MeterView, kc: KeyChange,
                     now: datetime) -> IssueResult:
    """Make one meter's key change set (`now`: the service clock, naive UTC).  Raises an
    StsError before anything is stored when the set cannot be issued."""
    return issue(svc.sm, m, [], kc, wall(local(now, m.time_zone)))


def issue_key_changes(svc: ServiceContext, changes: list[tuple[MeterView, KeyChange]],
                      now: datetime) -> list[IssueResult | StsError]:
    """`issue_key_change` for many meters (a campaign chunk): the security module makes the
    sets together (`SecurityModule.key_change_many`), then each meter's result is what
    `issue_key_change` returns, or the StsError it raises."""
    made = svc.sm.key_change_many([key_change_item(m, kc) for m, kc in changes])
    walls: dict[str, datetime] = {}
    out: list[IssueResult | StsError] = []
    for (m, kc), got in zip(changes, made, strict=True):
        at = walls.get(m.time_zone)
        if at is None:
            at = walls[m.time_zone] = wall(local(now, m.time_zone))
        try:
            out.append(issue(svc.sm, m, [], kc, at, made_set=got))
        except StsError as exc:
            out.append(exc)
    return out


def key_change_rows(svc: ServiceContext, m: MeterView, kc: KeyChange, res: IssueResult, *,
                    seq: int, request_id: str, reason: str,
                    now: datetime) -> tuple[dict[str, Any], Writes]:
    """The answer and the writes (transaction, tokens, the meter's new state, and for an AMI
    meter its delivery job) of an issued key change set stored as receipt `seq`."""
    _at, stamp, at_wall, at_utc = _times(now, m.time_zone)
    response = {"request_id": request_id, "receipt_no": f"{seq:010d}",
                "type": "key_change", "reason": reason, "date": stamp,
                "meter": m.describe(),
                "key_change": {"to": kc.target(), "rollover": kc.ro},
                "tokens": res.public()}
    _body, writes = entry_writes(svc.hot, Entry(
        seq=seq, request_id=request_id, kind="key_change", meter=m,
        request_hash=_identity(request_id), response=response,
        now=at_wall, issued=res, reason=reason, plain=True))
    # token delivery: an AMI meter gets its key change pushed (the job goes with the writes)
    writes += delivery_outbox.job_writes(request_id, txn_seq=seq, meter_id=m.id, ami=m.ami,
                                         wanted=[], now=svc.hot.ts_in(at_utc))
    return response, writes


def audit_details(request_id: str, kc: KeyChange) -> dict[str, Any]:
    return {"request_id": request_id, "krn": kc.new_key.record.krn, "ti": kc.new_ti}


def after_key_changes(svc: ServiceContext, conn: Connection,
                      issued: list[tuple[MeterView, dict[str, Any]]]) -> None:
    """Called once per stored batch of key changes (one meter, or a campaign chunk), inside
    its transaction: the place for work that follows a key change (e.g. queueing delivery to
    AMI meters).  Nothing follows a key change yet."""
    del svc, conn, issued


def key_change_meter(svc: ServiceContext, conn: Connection, m: MeterView, kc: KeyChange, *,
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


def request_tokens(svc: ServiceContext, request_id: str, meter: object,
                   caller: Caller) -> tuple[dict[str, Any], bool]:
    """(answer with `tokens` holding only KCTs, created), for a vendor that may sell to the
    meter.  When the meter's key or tariff index differs from what a sale would move it to
    (`issue.due_key_change`, the sale's rule), the set is issued and stored as a key change
    transaction, idempotent on `request_id`.  When nothing is due but the meter's last
    transaction carried a KCT set no later token has followed, that same set is returned again
    (the customer may not have entered it yet): a second set would give one meter two sets.
    Otherwise NoKeyChangeDue."""
    caller.require("purchase")
    check_request_id(request_id, "requestId")
    hot = svc.hot
    t = transactions.c
    with svc.db.begin() as conn:
        cur = hot.cursor(conn)
        try:
            m = read_meter(hot, cur, meter, lock=True, vendor_id=caller.vendor_id)
            earlier = stored(hot, cur, request_id)
            if earlier is not None:
                return json.loads(earlier.repeat("key_change", _identity(request_id),
                                                 request_id)), False
            check_may_sell(caller, m)
            kc = due_key_change(m, svc.key_loader(cur))
        finally:
            cur.close()
        if kc is not None:
            out = key_change_meter(svc, conn, m, kc, request_id=request_id, actor=caller.actor,
                                   reason="key change tokens requested")
            return json.loads(json.dumps(out, default=str)), True
        last = conn.execute(select(t.response, t.hash, t.request_id, t.status)
                            .where(t.meter_id == m.id).order_by(t.seq.desc()).limit(1)).first()
    if last is not None and last.hash == m.last_hash and last.status == "completed":
        prior: dict[str, Any] = json.loads(last.response)
        kcts = [tk for tk in prior.get("tokens", []) if tk.get("kind") == "KCT"]
        if kcts:
            prior["tokens"] = kcts
            prior["repeat_of"] = last.request_id
            return prior, False
    raise NoKeyChangeDue(f"meter {m.pan} already holds its supply group's current key",
                         field="meter")
