"""Engineering tokens (clear tamper, clear credit, power limits, test) and explicit key changes.

Every engineering issue needs a reason (work order or note) and is audited.  The engine refuses
a token its own meter-side decoder would reject; that refusal happens before anything is
stored, so it burns no TID.  An explicit key change may go to any key of the meter's SGC (an
engineer's deliberate, audited act); sales never move a meter to an older key (`issue.py`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sts.errors import InputError, UnknownRecord
from sts.vending import audit
from sts.vending import outbox as delivery_outbox
from sts.vending.access.policy import Caller
from sts.vending.clock import local, utc, wall
from sts.vending.issue import KeyChange, Planned, due_key_change, issue
from sts.vending.ledger import Entry, check_request_id, entry_writes, next_seq, request_hash, stored
from sts.vending.meters import MeterView, meter_pan, read_meter

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext

ENGINEERING_TYPES = ("clear_tamper", "clear_credit", "power_limit", "phase_unbalance",
                     "key_change", "test")
REASON_MIN, REASON_MAX = 3, 300  # transactions.reason is VARCHAR(300)


def check_reason(value: object, *, what: str = "engineering tokens",
                 field: str = "reason") -> str:
    """A reason (work order or note): 3 to 300 characters once trimmed."""
    rule = (f"give a reason for {what}: {REASON_MIN} to {REASON_MAX} characters "
            "(a work order number or a note saying why)")
    if not isinstance(value, str):
        raise InputError(rule, field=field)
    text = value.strip()
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise InputError(f"{rule}; got {len(text)} characters", field=field)
    return text


def int_field(body: dict[str, Any], name: str, low: int, high: int,
              default: int | None = None) -> int:
    v = body.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{name} must be an integer from {low} to {high}", field=name)
    if not low <= v <= high:
        raise InputError(f"{name} must be from {low} to {high}, got {v}", field=name)
    return v


def plan(m: MeterView, body: dict[str, Any]) -> list[Planned]:
    """The tokens of an engineering request (field ranges here; what a meter accepts is the
    engine's rule, applied when the token is made)."""
    kind = body.get("type")
    if kind == "clear_tamper":
        return [Planned("ENG", 2, 5, {"pad": 0}, label="CLEAR TAMPER")]
    if kind == "clear_credit":
        reg = int_field(body, "register", 0, 0xFFFF, 0xFFFF)
        return [Planned("ENG", 2, 1, {"register": reg}, label="CLEAR CREDIT")]
    if kind == "power_limit":
        return [Planned("ENG", 2, 0, {"mpl_watts": int_field(body, "watts", 0, 0xFFFF)},
                        label="SET POWER LIMIT")]
    if kind == "phase_unbalance":
        return [Planned("ENG", 2, 6, {"mppul_watts": int_field(body, "watts", 0, 0xFFFF)},
                        label="SET PHASE UNBALANCE LIMIT")]
    if kind == "test":
        wide = len(m.mfr_code) == 4
        bits = 28 if wide else 36
        control = int_field(body, "control", 0, (1 << bits) - 1, (1 << bits) - 1)
        return [Planned("TEST", 1, 1 if wide else 0,
                        {"control": control, "mfr_code": m.mfr_code}, label="TEST TOKEN")]
    if kind == "key_change":
        return []
    raise InputError(f"type must be one of {', '.join(ENGINEERING_TYPES)}", field="type")


def explicit_key_change(svc: ServiceContext, cur: Any, m: MeterView,
                        body: dict[str, Any]) -> KeyChange | None:
    to_krn, to_ti, ro = body.get("to_krn"), body.get("to_ti"), body.get("ro")
    krn = None if to_krn is None else int_field(body, "to_krn", 1, 9)
    ti = m.ti if to_ti is None else int_field(body, "to_ti", 0, 99)
    if ro is not None and not isinstance(ro, bool):
        raise InputError("ro must be true or false", field="ro")
    if krn is None and to_ti is None:
        return due_key_change(m, svc.key_loader(cur))
    target = m.key
    if krn is not None:
        kid = svc.key_id(cur, m.sgc_id, krn)
        if kid is None:
            raise UnknownRecord(f"SGC {m.sgc} has no key with KRN {krn}", field="to_krn")
        target = svc.key_loader(cur)(kid)
    return KeyChange(target, ti,
                     ro if ro is not None else target.record.base_date != m.key.record.base_date)


def engineering(svc: ServiceContext, request_id: str, body: dict[str, Any],
                caller: Caller) -> tuple[dict[str, Any], bool]:
    caller.require("engineering")
    check_request_id(request_id, "request_id")
    reason = check_reason(body.get("reason"))
    if body.get("meter") is None:
        raise InputError("meter is required: the meter number printed on the meter or its "
                         "18-digit PAN", field="meter")
    pan = meter_pan(body.get("meter"))
    kind = body.get("type")
    wanted = delivery_outbox.parse_deliver(body.get("deliver"))  # token delivery channels
    rhash = request_hash({k: v for k, v in body.items()} | {"meter": pan})
    hot = svc.hot
    with svc.db.begin() as conn:
        cur = hot.cursor(conn)
        try:
            earlier = stored(hot, cur, request_id)
            if earlier is not None:
                return json.loads(earlier.repeat("engineering", rhash, request_id)), False
            m = read_meter(hot, cur, pan, lock=True)
            earlier = stored(hot, cur, request_id)
            if earlier is not None:
                return json.loads(earlier.repeat("engineering", rhash, request_id)), False
            tokens = plan(m, body)
            kc = None
            if kind == "key_change":
                kc = explicit_key_change(svc, cur, m, body)
                if kc is None:
                    raise InputError("the meter already holds the current key", field="type")
            now = local(svc.now(), m.time_zone)
            res = issue(svc.sm, m, tokens, kc, wall(now))
            seq = next_seq(hot, cur)
            response: dict[str, Any] = {
                "request_id": request_id, "receipt_no": f"{seq:010d}", "type": kind,
                "reason": reason, "date": now.isoformat(), "meter": m.describe(),
                "tokens": res.public()}
            if kc is not None:
                response["key_change"] = {"to": kc.target(), "rollover": kc.ro}
            _body, writes = entry_writes(hot, Entry(
                seq=seq, request_id=request_id, kind="engineering", meter=m,
                request_hash=rhash, response=response, now=wall(now), issued=res,
                vendor_id=caller.vendor_id,
                api_key_id=caller.key_id if caller.key_id > 0 else None, reason=reason))
            # token delivery: the jobs (transactional outbox) go with the issue's own writes
            writes += delivery_outbox.job_writes(request_id, txn_seq=seq, meter_id=m.id,
                                                 ami=m.ami, wanted=wanted,
                                                 now=hot.ts_in(utc(now)))
            hot.write(cur, writes)
        finally:
            cur.close()
        audit.append(svc.db, conn, at=svc.now(), actor=caller.actor,
                     action=f"engineering:{kind}", subject=m.pan,
                     details={"request_id": request_id, "reason": reason,
                              "receipt_no": f"{seq:010d}"})
    return response, True
