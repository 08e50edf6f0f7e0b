"""Client message ids and the request journal of the switch interface.

Interface clients name every request and advice with their own UUID, unique across all
operations.  `claim` records an id once (the database's primary key decides between
concurrent twins); the row then carries the outcome, so a retry of a purchase answers what the
purchase answered.  `journal` appends one row per HTTP request with its outcome, whatever it
was, for the switch's reconciliation and for support.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from sts.vending import text
from sts.vending.storage.database import Database
from sts.vending.storage.tables_clients import client_messages, message_journal


@dataclass(frozen=True)
class Message:
    id: str
    operation: str
    ref_id: str | None
    request_hash: str
    request: dict[str, Any]
    status: str  # pending / done / failed
    http_status: int | None
    error_type: str | None
    outcome: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


def _message(row: Any) -> Message:
    return Message(row.id, row.operation, row.ref_id, row.request_hash, json.loads(row.request),
                   row.status, row.http_status, row.error_type,
                   json.loads(row.outcome) if row.outcome else None, row.created_at,
                   row.updated_at)


def get(db: Database, message_id: str) -> Message | None:
    with db.read() as conn:
        row = conn.execute(select(client_messages).where(client_messages.c.id == message_id)
                           ).first()
    return _message(row) if row is not None else None


def claim(db: Database, *, message_id: str, operation: str, request_hash: str,
          request: dict[str, Any], now: datetime, ref_id: str | None = None,
          institution_id: str = "", credential_id: int | None = None) -> tuple[bool, Message]:
    """(True, new row) the first time an id is seen; (False, the existing row) afterwards."""
    try:
        with db.begin() as conn:
            conn.execute(insert(client_messages).values(
                id=message_id, operation=operation, ref_id=ref_id,
                institution_id=institution_id[:64], credential_id=credential_id,
                request_hash=request_hash, request=json.dumps(request, sort_keys=True),
                status="pending", repeats=0, created_at=now, updated_at=now))
        created = True
    except IntegrityError:
        created = False
        with db.begin() as conn:
            conn.execute(update(client_messages).where(client_messages.c.id == message_id)
                         .values(repeats=client_messages.c.repeats + 1))
    found = get(db, message_id)
    assert found is not None
    return created, found


def finish(db: Database, message_id: str, *, status: str, now: datetime,
           http_status: int | None = None, error_type: str | None = None,
           outcome: dict[str, Any] | None = None) -> None:
    """Record a final outcome (done or failed) or put a row back to pending."""
    with db.begin() as conn:
        conn.execute(update(client_messages).where(client_messages.c.id == message_id).values(
            status=status, http_status=http_status, error_type=error_type,
            outcome=json.dumps(outcome, sort_keys=True) if outcome is not None else None,
            updated_at=now))


def journal(db: Database, *, now: datetime, operation: str, message_id: str,
            http_status: int, ref_id: str | None = None, username: str = "",
            institution_id: str = "", error_type: str | None = None, detail: str = "") -> None:
    # every request is journalled, refused ones too: their text is made storable here
    clean = text.printable
    with db.begin() as conn:
        conn.execute(insert(message_journal).values(
            at=now, operation=operation, message_id=clean(message_id[:64]),
            ref_id=clean(ref_id[:64]) if ref_id else None, username=clean(username[:64]),
            institution_id=clean(institution_id[:64]), http_status=http_status,
            error_type=error_type, detail=clean(detail[:300])))


def journal_entries(db: Database, message_id: str | None = None,
                    limit: int = 1000) -> list[dict[str, Any]]:
    j = message_journal.c
    stmt = select(message_journal).order_by(j.seq.desc()).limit(limit)
    if message_id is not None:
        stmt = stmt.where((j.message_id == message_id) | (j.ref_id == message_id))
    with db.read() as conn:
        rows = conn.execute(stmt).all()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v)
             for k, v in r._mapping.items()} for r in reversed(rows)]
