"""The context a use case runs in: the database, the security module, the clock and the
hot-path SQL, with the few reads every use case shares (a meter, a key, the key change due)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sts.vending.access.operators import SIGNIN_LIMIT
from sts.vending.clock import Clock, utc, wall_clock
from sts.vending.issue import KeyChange, due_key_change
from sts.vending.keys.security_module import SecurityModule
from sts.vending.meters import KeyInfo, MeterView, read_key, read_meter
from sts.vending.storage.database import Database
from sts.vending.storage.statements import HotSQL, Row, for_backend


def load_key(conn: Connection, key_id: int, hot: HotSQL | None = None) -> KeyInfo:
    """A vending key by id, inside `conn`'s transaction."""
    hot = hot or for_backend(conn.dialect.name == "sqlite")
    cur = hot.cursor(conn)
    try:
        return read_key(hot, cur, key_id)
    finally:
        cur.close()


class ServiceContext:
    """What every use case works with: the database (its units of work are `db.begin()` and
    `db.read()`), the security module, the clock and the SQL of the hot paths.  Use cases take
    this and the caller, never the facade, so each can be called and tested on its own."""

    def __init__(self, db: Database, sm: SecurityModule, *, clock: Clock = wall_clock,
                 lookup_limit: int = 600, signin_limit: int = SIGNIN_LIMIT) -> None:
        self.db = db
        self.sm = sm
        self.clock = clock
        self.lookup_limit = lookup_limit  # per API key per minute, across all processes
        self.signin_limit = signin_limit  # web sign-in attempts per address per minute
        self.hot = for_backend(db.is_sqlite)
        dbapi = db.engine.dialect.loaded_dbapi
        self.integrity_errors: tuple[type[Exception], ...] = (IntegrityError,
                                                               dbapi.IntegrityError)

    # --- shared helpers (used by the use cases and by faces) ----------------------------------

    def now(self) -> datetime:
        """The service clock as naive UTC, whole seconds; use cases convert it into the
        meter's utility time zone (`sts.vending.clock.local`)."""
        return utc(self.clock())

    def load_meter(self, conn: Connection, pan: object, *, lock: bool) -> MeterView:
        """The meter named `pan` (printed meter number or PAN), inside `conn`'s transaction."""
        cur = self.hot.cursor(conn)
        try:
            return read_meter(self.hot, cur, pan, lock=lock)
        finally:
            cur.close()

    def key_change_due(self, conn: Connection, m: MeterView) -> KeyChange | None:
        cur = self.hot.cursor(conn)
        try:
            return due_key_change(m, self.key_loader(cur))
        finally:
            cur.close()

    def key_loader(self, cur: Any) -> Callable[[int], KeyInfo]:
        return lambda key_id: read_key(self.hot, cur, key_id)

    def key_id(self, cur: Any, sgc_id: int, krn: int) -> int | None:
        row = self.hot.key_by_krn.one(cur, {"sgc_id": sgc_id, "krn": krn})
        return None if row is None else int(row["key_id"])

    def month_totals(self, cur: Any, meter_id: int, month: str) -> Row | None:
        return self.hot.month.one(cur, {"meter_id": meter_id, "month": month})
