"""The vending service: the one entry point every face (REST, CLI, Electrum, web, delivery)
calls.  It is a thin facade: each use case lives in its own module under
`sts.vending.usecases`, and the rules they share in small modules beside this one:

- `meters`: reading a meter (one query, by name) and how a meter may be named;
- `issue`: which key change is due, TID allocation, making tokens;
- `ledger`: request ids, repeats, receipt numbers, storing a transaction;
- `vendor`: who may sell and the vendor's float;
- `tariff`: money to units;  `receipts`: the printable slip;  `clock`: time zones;
- `hotsql`: the SQL all of them run.

Exactly once is described in `sts.vending.ledger`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sts.vending.auth import Caller
from sts.vending.clock import Clock, utc, wall_clock
from sts.vending.db import Database
from sts.vending.hotsql import HotSQL, Row, for_backend
from sts.vending.issue import KeyChange, due_key_change
from sts.vending.keys import SecurityModule
from sts.vending.meters import SERVICES, UNIT_NAMES, KeyInfo, MeterView, read_key, read_meter
from sts.vending.usecases import (
    engineering,
    free_units,
    keychange,
    lookup,
    reprint,
    reversal,
    sale,
    trial,
    verify,
)

__all__ = ["SERVICES", "UNIT_NAMES", "Clock", "KeyChange", "KeyInfo", "MeterView",
           "VendingService", "load_key", "wall_clock"]


def load_key(conn: Connection, key_id: int, hot: HotSQL | None = None) -> KeyInfo:
    """A vending key by id, inside `conn`'s transaction."""
    hot = hot or for_backend(conn.dialect.name == "sqlite")
    cur = hot.cursor(conn)
    try:
        return read_key(hot, cur, key_id)
    finally:
        cur.close()


class VendingService:
    def __init__(self, db: Database, sm: SecurityModule, *, clock: Clock = wall_clock,
                 lookup_limit: int = 600) -> None:
        self.db = db
        self.sm = sm
        self.clock = clock
        self.lookup_limit = lookup_limit  # per API key per minute, across all processes
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

    # --- use cases ----------------------------------------------------------------------------

    def lookup(self, pan: object, caller: Caller, amount: str | None = None) -> dict[str, Any]:
        return lookup.lookup(self, pan, caller, amount)

    def trial(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """The full answer of a sale, without tokens; nothing is stored."""
        return trial.trial(self, body, caller)

    def purchase(self, purchase_id: str, body: dict[str, Any],
                 caller: Caller) -> tuple[dict[str, Any], bool]:
        """(answer, created): a new sale, or the stored answer for a repeated id."""
        return sale.purchase_dict(self, purchase_id, body, caller)

    def purchase_json(self, purchase_id: str, body: dict[str, Any],
                      api_key: str) -> tuple[str, bool]:
        """The REST face of `purchase`: the API key is checked inside the sale's transaction
        (no second connection), and the answer is the stored JSON text itself."""
        return sale.purchase(self, purchase_id, body, None, api_key)

    def claim_free_units(self, request_id: str, meter: object,
                         caller: Caller) -> tuple[dict[str, Any], bool]:
        """This month's free basic units alone (a zero-value sale), once a month per meter."""
        return free_units.claim(self, request_id, meter, caller)

    def get_purchase(self, purchase_id: str, caller: Caller) -> dict[str, Any]:
        """The stored answer for a purchase id (what a client asks after a timeout)."""
        return reprint.get_purchase(self, purchase_id, caller)

    def reprint(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return reprint.reprint(self, body, caller)

    def reverse(self, purchase_id: str, reason: object, caller: Caller, *,
                action: str = "reverse") -> tuple[dict[str, Any], bool]:
        """Cancel a sale whose tokens never reached the customer; its TIDs stay used.
        `action` is the permission checked ("reverse_advice" for a switch's advice)."""
        return reversal.reverse(self, purchase_id, reason, caller, action=action)

    def engineering(self, request_id: str, body: dict[str, Any],
                    caller: Caller) -> tuple[dict[str, Any], bool]:
        return engineering.engineering(self, request_id, body, caller)

    def key_change_meter(self, conn: Connection, m: MeterView, kc: KeyChange, *,
                         request_id: str, actor: str, reason: str) -> dict[str, Any]:
        """A key change set alone (campaigns), inside the caller's transaction."""
        return keychange.key_change_meter(self, conn, m, kc, request_id=request_id,
                                          actor=actor, reason=reason)

    def key_change_tokens(self, request_id: str, meter: object,
                          caller: Caller) -> tuple[dict[str, Any], bool]:
        """The meter's key change tokens asked for without a purchase (a point of sale)."""
        return keychange.request_tokens(self, request_id, meter, caller)

    def verify_token(self, pan: object, token: object, caller: Caller) -> dict[str, Any]:
        """Decode a token with the meter's key and say whether and when this server issued it."""
        return verify.verify_token(self, pan, token, caller)
