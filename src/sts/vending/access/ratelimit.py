"""Rate limits kept in the database, so they hold across every server process.

A counter row per (bucket, minute) is incremented with one upsert ... RETURNING; the first hit
of a new minute clears the bucket's older rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from sts.errors import RateLimited
from sts.vending.access.policy import Caller
from sts.vending.i18n import N_
from sts.vending.storage.database import Database
from sts.vending.storage.tables import rate_counters


def count(db: Database, conn: Connection, bucket: str, now: datetime) -> int:
    """Count one request in the bucket; how many it holds this minute, this one included."""
    window = int(now.timestamp()) // 60
    ins = sqlite.insert(rate_counters) if db.is_sqlite else postgresql.insert(rate_counters)
    stmt = ins.values(bucket=bucket, window_start=window, count=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=[rate_counters.c.bucket, rate_counters.c.window_start],
        set_={"count": rate_counters.c.count + 1},
    ).returning(rate_counters.c.count)
    n = int(conn.execute(upsert).scalar_one())
    if n == 1:
        conn.execute(delete(rate_counters).where(rate_counters.c.bucket == bucket,
                                                 rate_counters.c.window_start < window))
    return n


def hit(db: Database, conn: Connection, bucket: str, now: datetime, limit: int) -> int:
    """Count one request; RateLimited when the bucket is over `limit` this minute."""
    if limit <= 0:
        return 0
    n = count(db, conn, bucket, now)
    if n > limit:
        raise RateLimited(N_("more than {limit} lookups a minute for this API key; slow down"),
                          field="authorization", limit=limit)
    return n


def customer_read(db: Database, conn: Connection, caller: Caller, now: datetime,
                  limit: int) -> None:
    """Count one answer that shows a customer (name, account, address): every lookup and
    trial, on every face, shares one bucket per caller, so no face can be used to list the
    customers faster than `--lookup-limit` a minute."""
    try:
        hit(db, conn, f"lookup:{caller.key_id}", now, limit)
    except RateLimited:
        raise RateLimited(N_("more than {limit} lookups and trials a minute for this caller; "
                             "slow down"), field="authorization", limit=limit) from None
