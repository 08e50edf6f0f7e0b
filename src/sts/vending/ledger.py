"""The transaction ledger: request ids, repeats, receipt numbers and storing a transaction.

Exactly once: every token-issuing use case runs in one database transaction that locks the
meter row, then looks for its request id (a twin that held the lock first has committed, so its
answer is visible), allocates TIDs from the meter row, makes the tokens, and stores tokens,
answer and every balance change before committing.  A crash before the commit leaves nothing;
a repeat after it gets the stored answer.  The unique request id and UNIQUE(meter, epoch, tid)
are the database's backstops for both rules.  Each meter's transactions form a hash chain
(`last_hash` on the meter row).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sts.errors import DuplicateRequest, InputError
from sts.vending import audit
from sts.vending.issue import IssueResult
from sts.vending.meters import MeterView
from sts.vending.storage.statements import (
    INSERT_SALE,
    INSERT_TOKEN,
    INSERT_TXN,
    INSERT_TXN_PLAIN,
    UPDATE_METER,
    HotSQL,
    Row,
)

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")
ZERO = Decimal(0)
Writes = list[tuple[str, dict[str, Any]]]


def check_request_id(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise InputError(f"{field_name} must be 8-64 letters, digits or ._:- (a UUID is best)",
                         field=field_name)
    return value


def derived_id(kind: str, of: str) -> str:
    """The record id of something the server derives from a client's request (a reversal of
    a sale).  It starts with `~`, which no client id may (`REQUEST_ID`), so the two never
    collide; it always fits the 64-character column (a long client id is hashed)."""
    readable = f"~{kind}:{of}"
    if len(readable) <= 64:
        return readable
    return f"~{kind}#" + hashlib.sha256(of.encode()).hexdigest()[:64 - len(kind) - 2]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def request_hash(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A stored transaction as a repeat of its request sees it."""

    seq: int
    kind: str
    request_hash: str
    response: str
    status: str
    vendor_id: int | None

    @classmethod
    def from_row(cls, r: Row) -> Stored | None:
        if r["seq"] is None:
            return None
        return cls(int(r["seq"]), r["kind"], r["request_hash"], r["response"], r["status"],
                   r["vendor_id"])

    def repeat(self, kind: str, rhash: str, request_id: str) -> str:
        """The stored answer (JSON text) for a repeat of the same request."""
        if self.kind != kind or self.request_hash != rhash:
            raise DuplicateRequest(
                f"request id {request_id} was already used for a different request",
                field="id")
        return self.response


def stored(hot: HotSQL, cur: Any, request_id: str) -> Stored | None:
    row = hot.stored.one(cur, {"request_id": request_id})
    return None if row is None else Stored.from_row(row)


def next_seq(hot: HotSQL, cur: Any) -> int:
    row = hot.next_seq.one(cur, {})
    assert row is not None
    return int(row["next_seq"])


@dataclass
class Entry:
    """One transaction to store for a meter, and the meter state it leaves behind."""

    seq: int
    request_id: str
    kind: str  # sale / reversal / engineering / key_change
    meter: MeterView
    request_hash: str
    response: dict[str, Any]
    now: datetime  # the utility's local wall time
    issued: IssueResult | None = None
    vendor_id: int | None = None
    api_key_id: int | None = None
    month: str = ""
    amount: Decimal = ZERO
    vat: Decimal = ZERO
    charges: Decimal = ZERO
    debt: Decimal = ZERO
    units: Decimal = ZERO
    reverses: int | None = None
    reason: str = ""
    meter_state: dict[str, int] | None = None  # key_id, ti, ken, tid_epoch, last_tid to set
    plain: bool = False  # the response holds plain values only (`audit.canonical_plain`)
    tender: str | None = None  # a sale's tender (`sts.vending.tenders`)


def entry_writes(hot: HotSQL, e: Entry) -> tuple[str, Writes]:
    """The JSON text of the answer, and the writes that store the transaction, its tokens and
    the meter's new state (key, TIDs, chain head)."""
    mi = hot.money_in
    m = e.meter
    body = audit.canonical_plain(e.response) if e.plain else canonical(e.response)
    prev = m.last_hash or audit.GENESIS
    digest = audit.txn_hash(prev, e.request_id, e.kind, body)
    created = hot.ts_in(e.now)
    res = e.issued
    txn = {
        "seq": e.seq, "request_id": e.request_id, "kind": e.kind, "meter_id": m.id,
        "vendor_id": e.vendor_id, "api_key_id": e.api_key_id, "request_hash": e.request_hash,
        "amount": mi(e.amount), "vat": mi(e.vat), "charges": mi(e.charges),
        "debt": mi(e.debt), "units": mi(e.units), "month": e.month,
        "prev_key": audit.canonical_plain(res.prev_key) if res else "",
        "response": body, "created_at": created, "prev_hash": prev, "hash": digest}
    if e.reverses is None and not e.reason:
        writes: Writes = [(INSERT_SALE[e.tender] if e.kind == "sale" else INSERT_TXN_PLAIN,
                           txn)]
    else:
        writes = [(INSERT_TXN, txn | {"reverses": e.reverses, "reason": e.reason})]
    state = {"key_id": m.key.record.id, "ti": m.ti, "ken": m.ken, "tid_epoch": m.tid_epoch,
             "max_epoch": m.max_epoch, "last_tid": m.last_tid}
    if res is not None:
        writes += [(INSERT_TOKEN, {
            "txn_seq": e.seq, "meter_id": m.id, "position": i, "token": t["token"],
            "token_class": t["token_class"], "subclass": t["subclass"], "tid": t["tid"],
            "tid_epoch": t["tid_epoch"], "units": mi(t["units"]), "kind": t["kind"],
            "description": t["description"], "key_id": t["key_id"], "kt": t["kt"],
            "ti": t["ti"], "ken": t["ken"], "created_at": created})
            for i, t in enumerate(res.tokens)]
        state.update(key_id=res.key_id, ti=res.ti, ken=res.ken, tid_epoch=res.tid_epoch,
                     max_epoch=res.max_epoch, last_tid=res.last_tid)
    if e.meter_state:
        state.update(e.meter_state)
    writes.append((UPDATE_METER, {"id": m.id, "last_hash": digest, **state}))
    return body, writes
