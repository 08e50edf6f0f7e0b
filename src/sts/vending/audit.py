"""The append-only audit log: every entry carries the hash of the one before.

Appending locks the single `audit_head` row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
write lock already serialises), so entries written by several server processes still form one
chain.  `verify` recomputes the chain, and each meter's chain of transactions (sales,
reversals, engineering and key change issues), which is kept per meter so that sales need no
global lock.

Each entry also records the id of the request that wrote it (`request_id`, the X-Request-ID
of the server's log line).  That column is not part of the hash: it correlates, it does not
attest, and entries written before it existed (or by the CLI) have none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from sts.vending import observe
from sts.vending.storage.database import Database
from sts.vending.storage.statements import INSERT_AUDIT, for_backend
from sts.vending.storage.tables import audit_head, audit_log, meters, transactions

GENESIS = "0" * 64
_PLAIN = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def canonical_plain(obj: Any) -> str:
    """`canonical(obj)`, the same text, made faster by orjson, for values built of str, int,
    bool, None, lists, tuples and dicts with str keys (Decimal and datetime become str as
    there); no floats and no enums, whose text orjson writes differently.  Any text orjson
    writes otherwise than `json` (non-ASCII, DEL, too large an integer, a non-str key) is
    made by `canonical`.  Stored hashes are over this text, so it must never change."""
    try:
        out = orjson.dumps(obj, default=str, option=_PLAIN)
    except TypeError:
        return canonical(obj)
    if out.isascii() and b"\x7f" not in out:
        return out.decode()
    return canonical(obj)


def entry_hash(prev: str, seq: int, at: datetime, actor: str, action: str, subject: str,
               details: str) -> str:
    return _entry_hash(prev, seq, at.isoformat(), actor, action, subject, details)


def _entry_hash(prev: str, seq: int, at: str, actor: str, action: str, subject: str,
                details: str) -> str:
    body = canonical_plain([seq, at, actor, action, subject, details])
    return hashlib.sha256(f"{prev}|{body}".encode()).hexdigest()


def txn_hash(prev: str, request_id: str, kind: str, response: str) -> str:
    return hashlib.sha256(f"{prev}|{request_id}|{kind}|{response}".encode()).hexdigest()


def append(db: Database, conn: Connection, *, at: datetime, actor: str, action: str,
           subject: str, details: dict[str, Any] | None = None) -> int:
    """Add one entry inside the caller's transaction; returns its sequence number."""
    head = conn.execute(db.locked(select(audit_head.c.seq, audit_head.c.hash)
                                  .where(audit_head.c.id == 1))).one()
    seq = head.seq + 1
    text = canonical(details or {})
    digest = entry_hash(head.hash, seq, at, actor, action, subject, text)
    conn.execute(audit_log.insert().values(seq=seq, at=at, actor=actor, action=action,
                                           subject=subject, details=text, prev_hash=head.hash,
                                           hash=digest, request_id=observe.request_id()))
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return int(seq)


def append_many(db: Database, conn: Connection, *, at: datetime, actor: str, action: str,
                entries: list[tuple[str, dict[str, Any]]]) -> None:
    """Add one entry per (subject, details), in order, under one lock of the head (bulk
    campaigns): the same entries, and the same chain, as `append` called for each.  The
    details hold plain values (`canonical_plain`); the rows go in bulk (`HotSQL.write_many`)."""
    if not entries:
        return
    head = conn.execute(db.locked(select(audit_head.c.seq, audit_head.c.hash)
                                  .where(audit_head.c.id == 1))).one()
    seq, prev = int(head.seq), str(head.hash)
    hot = for_backend(db.is_sqlite)
    stamp, at_in = at.isoformat(), hot.ts_in(at)
    rows = []
    request_id = observe.request_id()
    for subject, details in entries:
        seq += 1
        text = canonical_plain(details)
        digest = _entry_hash(prev, seq, stamp, actor, action, subject, text)
        rows.append({"seq": seq, "at": at_in, "actor": actor, "action": action,
                     "subject": subject, "details": text, "prev_hash": prev, "hash": digest,
                     "request_id": request_id})
        prev = digest
    cur = hot.cursor(conn)
    try:
        hot.write_many(cur, {INSERT_AUDIT: rows})
    finally:
        cur.close()
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))


@dataclass
class Verification:
    entries: int = 0
    meters: int = 0
    transactions: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "meters": self.meters,
                "transactions": self.transactions, "problems": self.problems[:100]}


def verify(db: Database) -> Verification:
    out = Verification()
    with db.read() as conn:
        prev = GENESIS
        expect = 1
        for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
            out.entries += 1
            if row.seq != expect:
                out.problems.append(f"audit entry {expect} is missing (found {row.seq})")
            if row.prev_hash != prev:
                out.problems.append(f"audit entry {row.seq}: link to the previous entry broken")
            digest = entry_hash(row.prev_hash, row.seq, row.at, row.actor, row.action,
                                row.subject, row.details)
            if digest != row.hash:
                out.problems.append(f"audit entry {row.seq}: content does not match its hash")
            prev, expect = row.hash, row.seq + 1
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
        if head is not None and (head.seq != expect - 1 or head.hash != prev):
            out.problems.append("audit head does not match the last entry (entries removed?)")
        chains: dict[int, str] = {}
        for row in conn.execute(
            select(transactions.c.seq, transactions.c.meter_id, transactions.c.request_id,
                   transactions.c.kind, transactions.c.response, transactions.c.prev_hash,
                   transactions.c.hash).order_by(transactions.c.seq)
        ):
            out.transactions += 1
            prev_m = chains.get(row.meter_id, GENESIS)
            if row.prev_hash != prev_m:
                out.problems.append(f"transaction {row.seq}: meter chain link broken")
            if txn_hash(row.prev_hash, row.request_id, row.kind, row.response) != row.hash:
                out.problems.append(f"transaction {row.seq}: content does not match its hash")
            chains[row.meter_id] = row.hash
        for m in conn.execute(select(meters.c.id, meters.c.pan, meters.c.last_hash)):
            out.meters += 1
            if chains.get(m.id, "") != m.last_hash:
                out.problems.append(f"meter {m.pan}: last transaction hash does not match")
    return out
