"""Hand-written SQL for the purchase hot path.

A sale is the one request that must be fast, and most of its cost was building, caching and
compiling SQLAlchemy statements and wrapping their results, not the database.  The purchase
therefore runs a few fixed SQL strings straight on the DBAPI connection of the caller's
SQLAlchemy transaction (so it is the same transaction: same BEGIN IMMEDIATE on SQLite, same
commit or rollback).  On PostgreSQL psycopg prepares repeated statements on the server after a
few uses, so the server skips parsing and planning too; the writes of a sale go as one
statement of data-modifying CTEs there (`HotSQL.write`).

The strings use `:name` parameters; for psycopg they become `%(name)s`.  Money and time stamps
are converted here exactly as the column types in `sts.vending.models` do it (SQLite stores
money as integer micro-units and time stamps as text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite

from sts.vending.models import MICRO, TS

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

AUTH = """
SELECT id, role, label, vendor_id, key_hash, revoked_at FROM api_keys WHERE key_hash = :digest
"""

METER = """
SELECT m.id, m.pan, m.status, m.status_reason, m.service, m.kt, m.ti, m.ken, m.mfr_code,
       m.last_tid, m.tid_epoch, m.max_epoch, m.last_hash, m.sgc_id, m.tariff_id, m.customer_id,
       k.id, k.krn, k.key_type, k.dkga, k.ea, k.base_date, k.table_set, k.module, k.blob,
       k.issued_until, k.kct_until, k.ken, k.credit_limit,
       g.sgc, g.current_key_id,
       t.name, t.description, t.ti, t.blocks, t.vat_rate, t.fixed_monthly, t.debt_share,
       t.free_units, t.min_amount, t.max_amount,
       c.account_no, c.name, c.address, c.debt_balance,
       u.name, u.address, u.vat_reg_num, u.currency,
       v.id, v.name, v.address, v.status, v.float_balance,
       (SELECT 1 FROM vendor_sgcs vs WHERE vs.vendor_id = v.id AND vs.sgc_id = m.sgc_id)
FROM meters m
JOIN vending_keys k ON k.id = m.key_id
JOIN supply_groups g ON g.id = k.sgc_id
JOIN tariffs t ON t.id = m.tariff_id
JOIN utilities u ON u.id = g.utility_id
LEFT JOIN customers c ON c.id = m.customer_id
LEFT JOIN vendors v ON v.id = :vendor_id
WHERE m.pan = :pan
"""

# read after the meter lock is held (a new statement: on PostgreSQL a new snapshot), so a twin
# that held the lock before us is visible, and so are the month totals it wrote
AFTER_LOCK = """
SELECT t.seq, t.kind, t.request_hash, t.response, mm.units, mm.fixed_paid, mm.free_units, {seq}
FROM (SELECT 1 AS one) AS x
LEFT JOIN transactions t ON t.request_id = :request_id
LEFT JOIN meter_months mm ON mm.meter_id = :meter_id AND mm.month = :month
"""
SEQ_PG = "nextval(pg_get_serial_sequence('transactions', 'seq'))"
SEQ_SQLITE = "(SELECT coalesce(max(seq), 0) + 1 FROM transactions)"

STORED = """
SELECT seq, kind, request_hash, response FROM transactions WHERE request_id = :request_id
"""

INSERT_TXN = """
INSERT INTO transactions (seq, request_id, kind, meter_id, vendor_id, api_key_id, request_hash,
    amount, vat, charges, debt, units, month, status, reverses, reason, prev_key, response,
    created_at, prev_hash, hash)
VALUES (:seq, :request_id, :kind, :meter_id, :vendor_id, :api_key_id, :request_hash,
    :amount, :vat, :charges, :debt, :units, :month, 'completed', NULL, '', :prev_key, :response,
    :created_at, :prev_hash, :hash)
"""

INSERT_TOKEN = """
INSERT INTO tokens (txn_seq, meter_id, position, token, token_class, subclass, tid, tid_epoch,
    units, kind, description, key_id, kt, ti, ken, status, created_at)
VALUES (:txn_seq, :meter_id, :position, :token, :token_class, :subclass, :tid, :tid_epoch,
    :units, :kind, :description, :key_id, :kt, :ti, :ken, 'issued', :created_at)
"""

UPDATE_METER = """
UPDATE meters SET last_hash = :last_hash, key_id = :key_id, ti = :ti, ken = :ken,
    tid_epoch = :tid_epoch, max_epoch = :max_epoch, last_tid = :last_tid
WHERE id = :id
"""

UPSERT_MONTH = """
INSERT INTO meter_months (meter_id, month, units, fixed_paid, free_units)
VALUES (:meter_id, :month, :units, :fixed_paid, :free_units)
ON CONFLICT (meter_id, month) DO UPDATE SET
    units = meter_months.units + excluded.units,
    fixed_paid = meter_months.fixed_paid + excluded.fixed_paid,
    free_units = meter_months.free_units + excluded.free_units
"""

KEY_CREDIT = """
UPDATE vending_keys SET credit_used = credit_used + :amount
WHERE id = :id AND credit_used + :amount <= credit_limit
"""

CUSTOMER_DEBT = """
UPDATE customers SET debt_balance = debt_balance - :debt WHERE id = :id
"""

VENDOR_FLOAT = """
UPDATE vendors SET float_balance = float_balance - :amount
WHERE id = :id AND float_balance >= :amount
"""


class HotSQL:
    """The hot-path statements for one backend, and its money and time conversions."""

    def __init__(self, is_sqlite: bool) -> None:
        self.is_sqlite = is_sqlite
        self.money_in: Callable[[Decimal | None], Any]
        self.money_out: Callable[[Any], Decimal | None]
        self.ts_in: Callable[[datetime | None], Any]
        self.ts_out: Callable[[Any], datetime | None]
        if is_sqlite:
            dialect = sqlite.dialect()
            ts = TS.dialect_impl(dialect)
            ts_bind = ts.bind_processor(dialect)
            ts_result = ts.result_processor(dialect, None)
            assert ts_bind is not None and ts_result is not None
            self.money_in = _sqlite_money_in
            self.money_out = _sqlite_money_out
            self.ts_in = ts_bind
            self.ts_out = ts_result
        else:
            self.money_in = _pg_money_in
            self.money_out = _same
            self.ts_in = _same
            self.ts_out = _same
        lock = "" if is_sqlite else " FOR UPDATE OF m"
        self.auth = self._sql(AUTH)
        self.meter = self._sql(METER + lock)
        self.after_lock = self._sql(AFTER_LOCK.format(seq=SEQ_SQLITE if is_sqlite else SEQ_PG))
        self.stored = self._sql(STORED)
        self.insert_txn = self._sql(INSERT_TXN)
        self.key_credit = self._sql(KEY_CREDIT)
        self._combined: dict[tuple[str, ...], str] = {}

    def _sql(self, text: str) -> str:
        text = " ".join(text.split())
        return text if self.is_sqlite else _PARAM.sub(r"%(\1)s", text)

    def write(self, cur: Any, writes: list[tuple[str, dict[str, Any]]]) -> int:
        """Run the sale's writes (templates from this module, in order; the last one the
        conditional vendor float UPDATE) and return the number of vendor rows it changed.

        SQLite runs them one by one under its write lock.  PostgreSQL gets them as one
        statement of data-modifying CTEs (one round trip, one parse): all of them run, and the
        caller rolls the transaction back if the float did not cover the sale.
        """
        if self.is_sqlite:
            for template, params in writes:
                cur.execute(self._sql(template), params)
            return int(cur.rowcount)
        key = tuple(t for t, _ in writes)
        sql = self._combined.get(key)
        if sql is None:
            parts = [f"w{i} AS ({_suffixed(t, i)})" for i, t in enumerate(key[:-1])]
            parts.append(f"v AS ({_suffixed(key[-1], len(key) - 1)} RETURNING 1)")
            sql = self._sql("WITH " + ", ".join(parts) + " SELECT count(*) FROM v")
            self._combined[key] = sql
        merged = {f"{name}_{i}": value for i, (_, params) in enumerate(writes)
                  for name, value in params.items()}
        cur.execute(sql, merged)
        return int(cur.fetchone()[0])

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """A DBAPI cursor inside `conn`'s transaction."""
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _suffixed(template: str, i: int) -> str:
    return _PARAM.sub(lambda m: f":{m.group(1)}_{i}", template.strip())


def _same(value: Any) -> Any:
    return value


def _pg_money_in(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money is never a float")
    return Decimal(value)


def _sqlite_money_in(value: Decimal | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money is never a float")
    return int((Decimal(value) * MICRO).to_integral_value())


def _sqlite_money_out(value: Any) -> Decimal | None:
    return None if value is None else Decimal(int(value)) / MICRO
