"""Exchanges of a vending client, keyed by its msgID: exactly once, the XMLVend way.

A request's identity is (client, msgID dateTime, msgID uniqueNumber); the client's own texts
are kept as sent (dateTime is not parsed, uniqueNumber is compared as a number by the face).
Each identity gets one row, claimed before the use case runs.  The row carries the service
request id the use case used (so a repeat, a crash recovery and an advice all find the same
sale) and, once the answer is complete, its payload exactly as sent: a repeat and a
last-response advice replay those bytes.

States and who moves them (every move is a compare-and-set on the row):

    pending -> done | failed     the request's own answer (or a repeat's, whichever is first)
    pending -> void              a last-response advice found no sale past the lease: the
                                 original may never answer now
    void -> cancelled            a late original that sold anyway: it reverses its own sale
    void -> done                 the advice found the sale after all and answers with it
    done -> reversed             a reversal advice

Financial requests (sales, engineering, advices) hold their msgID for good: the same msgID with
another request is refused.  Read-only requests (confirm customer, trials, reprints, login)
are answered anew when their msgID comes again, and their latest answer is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from sts.vending.storage.database import Database
from sts.vending.storage.tables_xmlvend import client_exchanges


@dataclass(frozen=True)
class Exchange:
    id: int
    client_row: int
    msg_date_time: str
    msg_unique: str
    kind: str
    financial: bool
    request_hash: str
    request_id: str | None
    request: str
    status: str
    resp_type: str | None
    payload: str | None
    fault: bool
    deliveries: int
    created_at: datetime
    updated_at: datetime


def service_request_id(client_row: int, date_time: str, unique: str) -> str:
    """The service's request id for a msgID (deterministic: every path finds the same sale)."""
    digest = hashlib.sha256(f"{client_row}|{date_time}|{unique}".encode()).hexdigest()
    return "xv-" + digest[:40]


_COLS = [client_exchanges.c[name] for name in Exchange.__dataclass_fields__]


@contextmanager
def request_connection(db: Database) -> Iterator[Connection | None]:
    """On PostgreSQL, one connection for a request's own single statements, each committing
    by itself (one pool checkout and one round trip per statement: no BEGIN, COMMIT or
    ROLLBACK of their own).  On SQLite, None: there every statement takes its own short
    transaction (a held connection would hold SQLite's one write lock)."""
    if db.is_sqlite:
        yield None
        return
    with db.engine.connect() as own:
        own.execution_options(isolation_level="AUTOCOMMIT")
        yield own


@contextmanager
def autocommit(db: Database, conn: Connection | None = None, *,
               write: bool = True) -> Iterator[Connection]:
    """Where one statement runs: `conn` (from `request_connection`) when given, else a
    connection of its own (PostgreSQL: autocommit; SQLite: a short transaction, a read one
    for a read)."""
    if conn is not None:
        yield conn
        return
    if db.is_sqlite:
        with db.begin() if write else db.read() as tx:
            yield tx
        return
    with request_connection(db) as own:
        assert own is not None
        yield own


def _read(conn: Connection, exchange_id: int) -> Exchange:
    row = conn.execute(select(*_COLS).where(client_exchanges.c.id == exchange_id)).one()
    return Exchange(**row._mapping)


def _one(row: Any) -> Exchange | None:
    return Exchange(**row._mapping) if row is not None else None


def get(db: Database, client_row: int, date_time: str, unique: str) -> Exchange | None:
    x = client_exchanges.c
    with autocommit(db, write=False) as conn:
        row = conn.execute(select(*_COLS).where(x.client_row == client_row,
                                                x.msg_date_time == date_time,
                                                x.msg_unique == unique)).first()
    return _one(row)


def by_request_id(db: Database, request_id: str) -> Exchange | None:
    """The exchange whose use case used service request id `request_id` (a sale's id)."""
    with autocommit(db, write=False) as conn:
        row = conn.execute(select(*_COLS).where(client_exchanges.c.request_id == request_id)
                           .order_by(client_exchanges.c.id).limit(1)).first()
    return Exchange(**row._mapping) if row is not None else None


def claim(db: Database, *, client_row: int, date_time: str, unique: str, kind: str,
          financial: bool, request_hash: str, request_id: str | None, request: str,
          now: datetime, conn: Connection | None = None) -> tuple[bool, Exchange]:
    """(True, row) when this request owns the msgID now; (False, the existing row) when a
    financial request holds it, or when it is the same financial request again.  A read-only
    request takes over a msgID last used by a read-only request.  One statement when the msgID
    is new (INSERT ... ON CONFLICT DO NOTHING RETURNING)."""
    x = client_exchanges.c
    values = {"client_row": client_row, "msg_date_time": date_time, "msg_unique": unique,
              "kind": kind, "financial": financial, "request_hash": request_hash,
              "request_id": request_id, "request": request, "status": "pending",
              "fault": False, "deliveries": 0, "created_at": now, "updated_at": now}
    stmt: Any
    if db.is_sqlite:
        stmt = sqlite.insert(client_exchanges).values(**values).on_conflict_do_nothing(
            index_elements=["client_row", "msg_date_time", "msg_unique"]).returning(*_COLS)
    else:
        # the claim's commit need not wait for the disk: the sale that follows commits
        # durably, and PostgreSQL's log is flushed in order, so a claim is never lost
        # while its sale stands (set_config(..., true) holds for this statement's commit)
        cfg = select(func.set_config("synchronous_commit", "off", True).label("v")).cte("cfg")
        stmt = postgresql.insert(client_exchanges).from_select(
            list(values), select(*(literal(v, client_exchanges.c[k].type)
                                   for k, v in values.items())).select_from(cfg)
        ).on_conflict_do_nothing(
            index_elements=["client_row", "msg_date_time", "msg_unique"]).returning(*_COLS)
    for _ in range(3):
        with autocommit(db, conn) as c:
            new = _one(c.execute(stmt).first())
            if new is not None:
                return True, new
            found = _one(c.execute(select(*_COLS).where(
                x.client_row == client_row, x.msg_date_time == date_time,
                x.msg_unique == unique)).first())
            if found is None:  # deleted in between: claim again
                continue
            if found.financial or financial:
                return False, found
            taken = _one(c.execute(update(client_exchanges).where(
                x.id == found.id, x.financial.is_(False), x.updated_at == found.updated_at,
                x.kind == found.kind).values(
                kind=kind, request_hash=request_hash, request_id=request_id, request=request,
                status="pending", resp_type=None, payload=None, fault=False, updated_at=now)
                .returning(*_COLS)).first())
            if taken is not None:  # a read-only request again: it owns the msgID now
                return True, taken
    found = get(db, client_row, date_time, unique)
    assert found is not None
    return False, found


def _move(db: Database, exchange_id: int, from_status: tuple[str, ...], now: datetime,
          conn: Connection | None = None, **values: object) -> tuple[bool, Exchange]:
    """Compare-and-set: (True, new row) when the row was in one of `from_status`."""
    x = client_exchanges.c
    with autocommit(db, conn) as c:
        moved = _one(c.execute(update(client_exchanges)
                                  .where(x.id == exchange_id, x.status.in_(from_status))
                                  .values(updated_at=now, **values).returning(*_COLS)).first())
        if moved is not None:
            return True, moved
        return False, _read(c, exchange_id)


def finish(db: Database, exchange_id: int, *, status: str, resp_type: str | None,
           payload: str | None, fault: bool, now: datetime,
           from_status: tuple[str, ...] = ("pending",),
           conn: Connection | None = None) -> tuple[bool, Exchange]:
    """Store the complete answer (done / failed) unless another party decided first."""
    return _move(db, exchange_id, from_status, now, conn, status=status, resp_type=resp_type,
                 payload=payload, fault=fault)


def void(db: Database, exchange_id: int, now: datetime) -> tuple[bool, Exchange]:
    """pending -> void: the original may no longer answer with a sale."""
    return _move(db, exchange_id, ("pending",), now, status="void")


def cancel(db: Database, exchange_id: int, now: datetime) -> tuple[bool, Exchange]:
    """void -> cancelled: a late original claims the right to reverse its own sale."""
    return _move(db, exchange_id, ("void",), now, status="cancelled")


def mark_reversed(db: Database, exchange_id: int, now: datetime) -> tuple[bool, Exchange]:
    return _move(db, exchange_id, ("done",), now, status="reversed")


def tombstone(db: Database, *, client_row: int, date_time: str, unique: str,
              now: datetime) -> Exchange:
    """A void row for a msgID never received, so a late original is refused."""
    try:
        with db.begin() as conn:
            new_id = conn.execute(insert(client_exchanges).values(
                client_row=client_row, msg_date_time=date_time, msg_unique=unique,
                kind="unknown", financial=True, request_hash="", request_id=None,
                request="", status="void", fault=False, deliveries=0, created_at=now,
                updated_at=now).returning(client_exchanges.c.id)).scalar_one()
            return _read(conn, int(new_id))
    except IntegrityError:
        found = get(db, client_row, date_time, unique)
        assert found is not None
        return found


def delivered_again(db: Database, exchange_id: int, now: datetime) -> None:
    """Count an answer sent after the first (a repeat, a last-response advice)."""
    x = client_exchanges.c
    with db.begin() as conn:
        conn.execute(update(client_exchanges).where(x.id == exchange_id)
                     .values(deliveries=x.deliveries + 1, updated_at=now))
