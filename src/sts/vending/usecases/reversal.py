"""Reversal: cancel a sale whose tokens never reached the customer.

A sale is confirmed (`sts.vending.usecases.advice`) or reversed once, whichever face asks first:
both lock the sale's own transaction row, so a confirmed sale is never reversed and a reversed
one never confirmed, whether the request came through /v1, the web, Electrum or XMLVend.  The
reversal is recorded against the vendor that sold, whoever reverses it.  Its own record id is
derived from the sale's (`ledger.derived_id`), outside the clients' id grammar.

The sale's TIDs stay used (the meter might still see them); the float, the customer's debt and
the month's totals are restored.  A sale that carried a key change can be reversed only while
it is the meter's last transaction: the meter then still holds its old key, and the meter row
goes back to it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sts.errors import ReversalNotAllowed, UnknownRecord
from sts.vending import advices, audit
from sts.vending.access.policy import Caller
from sts.vending.clock import local, wall
from sts.vending.ledger import (
    Entry,
    Stored,
    check_request_id,
    derived_id,
    entry_writes,
    next_seq,
    request_hash,
    stored,
)
from sts.vending.meters import read_meter
from sts.vending.storage.statements import (
    CUSTOMER_DEBT,
    MARK_TOKENS_REVERSED,
    MARK_TXN_REVERSED,
    UPSERT_MONTH,
    VENDOR_FLOAT,
    HotSQL,
)
from sts.vending.storage.tables import meters, transactions
from sts.vending.tariff import money, units_str
from sts.vending.usecases.engineering import check_reason

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def reverse(svc: ServiceContext, purchase_id: str, reason: object,
            caller: Caller, *, action: str = "reverse",
            reversal_id: str | None = None) -> tuple[dict[str, Any], bool]:
    """`action` is the permission checked: "reverse_advice" when a switch's reversal advice
    asks (the vendor's own unconfirmed sale; `sts.vending.usecases.advice`), which names its
    `reversal_id`.  Redone whole when PostgreSQL gave the transaction up to another."""
    return svc.db.retrying(lambda: _reverse(svc, purchase_id, reason, caller, action=action,
                                            reversal_id=reversal_id))


def _reverse(svc: ServiceContext, purchase_id: str, reason: object,
             caller: Caller, *, action: str, reversal_id: str | None) -> tuple[dict[str, Any], bool]:
    caller.require(action)
    check_request_id(purchase_id, "purchase_id")
    why = check_reason(reason, what="a reversal")
    rid = derived_id("reversal", purchase_id)
    rhash = request_hash({"reverses": purchase_id})
    hot = svc.hot
    mi = hot.money_in
    with svc.db.begin() as conn:
        cur = hot.cursor(conn)
        try:
            # the sale's row, locked: confirmations and reversals of it queue here
            orig = conn.execute(svc.db.locked(
                select(transactions).where(transactions.c.request_id == purchase_id))).first()
            if orig is None or orig.kind != "sale" or not caller.sees(orig.vendor_id):
                raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
            earlier = _earlier(hot, cur, rid, purchase_id)
            if earlier is not None:
                return json.loads(earlier.repeat("reversal", rhash, rid)), False
            pan = conn.scalar(select(meters.c.pan).where(meters.c.id == orig.meter_id))
            m = read_meter(hot, cur, pan, lock=True)
            if orig.status != "completed":
                raise ReversalNotAllowed("the purchase is already reversed", field="purchase_id")
            if advices.state_in(conn, purchase_id) == "confirmed":
                raise ReversalNotAllowed("the purchase is already confirmed: its tokens reached "
                                         "the customer", field="purchase_id")
            prev_key = json.loads(orig.prev_key or "{}")
            original = json.loads(orig.response)
            had_kc = original["receipt"].get("key_change") is not None
            if had_kc and m.last_hash != orig.hash:
                raise ReversalNotAllowed(
                    "the purchase changed the meter's key and later tokens were issued; "
                    "it cannot be reversed", field="purchase_id")
            now = local(svc.now(), m.time_zone)
            seq = next_seq(hot, cur)
            response = {"reversal_id": rid, "purchase_id": purchase_id,
                        "receipt_no": f"{seq:010d}", "reverses_receipt_no": f"{orig.seq:010d}",
                        "date": now.isoformat(), "reason": why,
                        "amount": money(-orig.amount), "units": units_str(orig.units),
                        "meter": m.pan,
                        "cancelled_tokens": [tk["token"] for tk in original["tokens"]]}
            restore: dict[str, int] = {}
            if had_kc:  # the KCTs never reached the meter: it still holds the old key
                restore = {"key_id": prev_key["key_id"], "ti": prev_key["ti"],
                           "ken": prev_key["ken"]}
                if prev_key["tid_epoch"] != m.tid_epoch:
                    restore.update(tid_epoch=prev_key["tid_epoch"], last_tid=prev_key["last_tid"])
            _body, writes = entry_writes(hot, Entry(
                seq=seq, request_id=rid, kind="reversal", meter=m, request_hash=rhash,
                response=response, now=wall(now), vendor_id=orig.vendor_id,
                api_key_id=caller.key_id if caller.key_id > 0 else None, month=orig.month,
                amount=-orig.amount, vat=-orig.vat, charges=-orig.charges, debt=-orig.debt,
                units=-orig.units, reverses=orig.seq, reason=why, meter_state=restore))
            free = Decimal(original["receipt"].get("free_units", "0"))
            writes += [(MARK_TXN_REVERSED, {"seq": orig.seq}),
                       (MARK_TOKENS_REVERSED, {"seq": orig.seq}),
                       (UPSERT_MONTH, {"meter_id": m.id, "month": orig.month,
                                       "units": mi(-orig.units), "fixed_paid": mi(-orig.charges),
                                       "free_units": mi(-free)})]
            if orig.debt and m.customer_id is not None:
                writes.append((CUSTOMER_DEBT, {"id": m.customer_id, "debt": mi(-orig.debt)}))
            if orig.vendor_id is not None:
                writes.append((VENDOR_FLOAT, {"id": orig.vendor_id, "amount": mi(-orig.amount)}))
            hot.write(cur, writes)
        finally:
            cur.close()
        advices.mark_reversed(conn, purchase_id, reversal_id or rid, why, wall(now))
        audit.append(svc.db, conn, at=svc.now(), actor=caller.actor, action="reversal",
                     subject=purchase_id, details={"reason": why, "meter": m.pan,
                                                   "amount": money(orig.amount)})
    return response, True


def _earlier(hot: HotSQL, cur: Any, rid: str, purchase_id: str) -> Stored | None:
    """The stored reversal of the sale: under its derived id, or under the id earlier
    versions gave it (`reversal:<purchase id>`, which a client could also have used)."""
    earlier = stored(hot, cur, rid)
    if earlier is None:
        legacy = stored(hot, cur, f"reversal:{purchase_id}")
        if legacy is not None and legacy.kind == "reversal" \
                and json.loads(legacy.response).get("purchase_id") == purchase_id:
            return legacy
    return earlier
