"""The SQL of the vending use cases: fixed, hand-written statements on the DBAPI connection.

A sale is the one request that must be fast, and most of its cost was building, caching and
compiling SQLAlchemy statements and wrapping their results, not the database.  Every use case
that issues tokens (sale, engineering, key change, reversal) therefore reads the meter and
writes its transaction through the same few SQL strings here, run straight on the DBAPI
connection of the caller's SQLAlchemy transaction (so it is the same transaction: same BEGIN
IMMEDIATE on SQLite, same commit or rollback).  There is one path, not a fast one beside a
slow one.  On PostgreSQL psycopg prepares repeated statements on the server after a few uses,
and the writes of a transaction go as one statement of data-modifying CTEs (`HotSQL.write`).
A campaign chunk stores the same rows for thousands of meters template by template
(`HotSQL.write_many`: on PostgreSQL COPY, or one UPDATE over a JSON array of the rows).

Queries name every column (`Query`): callers read rows by name, never by position.  The
strings use `:name` parameters; for psycopg they become `%(name)s`.  Money and time stamps are
converted here exactly as the column types in `sts.vending.storage.tables` do it (SQLite stores money
as integer micro-units and time stamps as text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from sts.vending.storage.tables import MICRO, TS, metadata
from sts.vending.tenders import TENDERS

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

Row = dict[str, Any]

# (name, SQL expression): the select lists, so a row is read by these names
AUTH_COLUMNS = (("id", "id"), ("role", "role"), ("label", "label"), ("vendor_id", "vendor_id"),
                ("key_hash", "key_hash"), ("revoked_at", "revoked_at"))

KEY_COLUMNS = (
    ("key_id", "k.id"), ("key_krn", "k.krn"), ("key_type", "k.key_type"),
    ("key_dkga", "k.dkga"), ("key_ea", "k.ea"), ("key_base_date", "k.base_date"),
    ("key_table_set", "k.table_set"), ("key_module", "k.module"), ("key_blob", "k.blob"),
    ("key_issued_until", "k.issued_until"), ("key_kct_until", "k.kct_until"),
    ("key_ken", "k.ken"), ("key_credit_limit", "k.credit_limit"), ("sgc", "g.sgc"),
)

METER_COLUMNS = (
    ("meter_id", "m.id"), ("pan", "m.pan"), ("status", "m.status"),
    ("status_reason", "m.status_reason"), ("service", "m.service"), ("kt", "m.kt"),
    ("ti", "m.ti"), ("ken", "m.ken"), ("mfr_code", "m.mfr_code"), ("last_tid", "m.last_tid"),
    ("tid_epoch", "m.tid_epoch"), ("max_epoch", "m.max_epoch"), ("last_hash", "m.last_hash"),
    ("sgc_id", "m.sgc_id"), ("tariff_id", "m.tariff_id"), ("customer_id", "m.customer_id"),
    ("ami", "m.ami"),
    *KEY_COLUMNS,
    ("current_key_id", "g.current_key_id"),
    ("tariff_name", "t.name"), ("tariff_description", "t.description"), ("tariff_ti", "t.ti"),
    ("tariff_blocks", "t.blocks"), ("vat_rate", "t.vat_rate"),
    ("fixed_monthly", "t.fixed_monthly"), ("debt_share", "t.debt_share"),
    ("free_units", "t.free_units"), ("min_amount", "t.min_amount"),
    ("max_amount", "t.max_amount"), ("tariff_pending_from", "t.pending_from"),
    ("account_no", "c.account_no"), ("customer_name", "c.name"),
    ("customer_address", "c.address"), ("debt_balance", "c.debt_balance"),
    ("utility_name", "u.name"), ("utility_address", "u.address"),
    ("vat_reg_num", "u.vat_reg_num"), ("currency", "u.currency"),
    ("time_zone", "u.time_zone"), ("locale", "u.locale"),
    ("vendor_id", "v.id"), ("vendor_name", "v.name"), ("vendor_address", "v.address"),
    ("vendor_status", "v.status"), ("float_balance", "v.float_balance"),
    ("vendor_authorised",
     "(SELECT 1 FROM vendor_sgcs vs WHERE vs.vendor_id = v.id AND vs.sgc_id = m.sgc_id)"),
)

METER_FROM = """
FROM meters m
JOIN vending_keys k ON k.id = m.key_id
JOIN supply_groups g ON g.id = k.sgc_id
JOIN tariffs t ON t.id = m.tariff_id
JOIN utilities u ON u.id = g.utility_id
LEFT JOIN customers c ON c.id = m.customer_id
LEFT JOIN vendors v ON v.id = :vendor_id
WHERE m.pan = :pan
"""

# many meters at once (key change campaigns), locked on PostgreSQL in id order
METERS_BY_ID_PG = METER_FROM.replace("WHERE m.pan = :pan",
                                     "WHERE m.id = ANY(:ids) ORDER BY m.id FOR UPDATE OF m")
METERS_BY_ID_SQLITE = METER_FROM.replace(
    "WHERE m.pan = :pan", "WHERE m.id IN (SELECT value FROM json_each(:ids)) ORDER BY m.id")

KEY_FROM = """
FROM vending_keys k JOIN supply_groups g ON g.id = k.sgc_id WHERE k.id = :id
"""

STORED_COLUMNS = (("seq", "t.seq"), ("kind", "t.kind"), ("request_hash", "t.request_hash"),
                  ("response", "t.response"), ("status", "t.status"),
                  ("vendor_id", "t.vendor_id"))

# read after the meter lock is held (a new statement: on PostgreSQL a new snapshot), so a twin
# that held the lock before us is visible, and so are the month totals it wrote
AFTER_LOCK_COLUMNS = (
    *STORED_COLUMNS,
    ("month_units", "mm.units"), ("month_fixed_paid", "mm.fixed_paid"),
    ("month_free_units", "mm.free_units"), ("next_seq", "{seq}"),
)
AFTER_LOCK_FROM = """
FROM (SELECT 1 AS one) AS x
LEFT JOIN transactions t ON t.request_id = :request_id
LEFT JOIN meter_months mm ON mm.meter_id = :meter_id AND mm.month = :month
"""
SEQ_PG = "nextval(pg_get_serial_sequence('transactions', 'seq'))"
SEQ_SQLITE = "(SELECT coalesce(max(seq), 0) + 1 FROM transactions)"

_TXN_COLUMNS = """
INSERT INTO transactions (seq, request_id, kind, meter_id, vendor_id, api_key_id, request_hash,
    amount, vat, charges, debt, units, month, status, reverses, reason, prev_key, response,
    created_at, prev_hash, hash, tender, shift_id)
VALUES (:seq, :request_id, :kind, :meter_id, :vendor_id, :api_key_id, :request_hash,
    :amount, :vat, :charges, :debt, :units, :month, 'completed', {reverses_reason}, :prev_key,
    :response, :created_at, :prev_hash, :hash, {tender}, {shift})
"""
# a counter sale's shift (migration 0024): the one its cashier (the key's operator) has open
# for this vendor, read in the sale's own statement (no parameter more, no round trip; the
# one-open-shift index finds it), so the cash-up counts the sale there by id
_OPEN_SHIFT = """(SELECT s.id FROM shifts s JOIN api_keys k ON k.operator_id = s.operator_id
    WHERE k.id = :api_key_id AND s.vendor_id = :vendor_id AND s.closed_at IS NULL)"""
# A transaction with a reason or a reversed sale (engineering, reversal, key change), and one
# without (a sale).  Two texts only because of the parameter count: psycopg caches the
# conversion of a statement with at most 50 parameters, and a sale's write CTE has 49.
INSERT_TXN = _TXN_COLUMNS.format(reverses_reason=":reverses, :reason", tender="NULL",
                                shift="NULL")
INSERT_TXN_PLAIN = _TXN_COLUMNS.format(reverses_reason="NULL, ''", tender="NULL", shift="NULL")
# a sale, with its tender (`sts.vending.tenders`; None: not said) written as a literal (no
# parameter more) and its cashier's open shift
INSERT_SALE = {t: _TXN_COLUMNS.format(reverses_reason="NULL, ''",
                                      tender=f"'{t}'" if t else "NULL", shift=_OPEN_SHIFT)
               for t in (*TENDERS, None)}

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

# a campaign item's outcome
MARK_ITEM = """
UPDATE campaign_items SET status = :status, txn_seq = :txn_seq, error = :error
WHERE campaign_id = :cid AND meter_id = :meter_id
"""

INSERT_AUDIT = """
INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash, request_id)
VALUES (:seq, :at, :actor, :action, :subject, :details, :prev_hash, :hash, :request_id)
"""

MARK_TXN_REVERSED = "UPDATE transactions SET status = 'reversed' WHERE seq = :seq"
MARK_TOKENS_REVERSED = "UPDATE tokens SET status = 'reversed' WHERE txn_seq = :seq"

KEY_CREDIT = """
UPDATE vending_keys SET credit_used = credit_used + :amount
WHERE id = :id AND credit_used + :amount <= credit_limit
"""

CUSTOMER_DEBT = """
UPDATE customers SET debt_balance = debt_balance - :debt WHERE id = :id
"""

# conditional: a sale whose amount the float does not cover changes no row
VENDOR_FLOAT = """
UPDATE vendors SET float_balance = float_balance - :amount
WHERE id = :id AND float_balance >= :amount
"""


@dataclass(frozen=True)
class Query:
    """A SELECT whose columns have names; `one` returns the first row as a dict by name."""

    sql: str
    names: tuple[str, ...]

    def one(self, cur: Any, params: dict[str, Any]) -> Row | None:
        cur.execute(self.sql, params)
        row = cur.fetchone()
        return None if row is None else dict(zip(self.names, row, strict=True))

    def all(self, cur: Any, params: dict[str, Any]) -> list[Row]:
        cur.execute(self.sql, params)
        return [dict(zip(self.names, row, strict=True)) for row in cur.fetchall()]


@lru_cache(maxsize=2)
def for_backend(is_sqlite: bool) -> HotSQL:
    """The shared statements for a backend (they hold no connection state)."""
    return HotSQL(is_sqlite)


class HotSQL:
    """The statements for one backend, and its money and time conversions."""

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
            self.ts_in = _last_one(ts_bind)
            self.ts_out = ts_result
        else:
            self.money_in = _pg_money_in
            self.money_out = _same
            self.ts_in = _same
            self.ts_out = _same
        self._text: dict[str, str] = {}
        seq = SEQ_SQLITE if is_sqlite else SEQ_PG
        self.auth = self._query(AUTH_COLUMNS, "FROM api_keys WHERE key_hash = :digest")
        self.meter = self._query(METER_COLUMNS, METER_FROM)
        self.meter_locked = self._query(METER_COLUMNS,
                                        METER_FROM + ("" if is_sqlite else " FOR UPDATE OF m"))
        self.key = self._query(KEY_COLUMNS, KEY_FROM)
        self.meters_by_id = self._query(
            METER_COLUMNS, METERS_BY_ID_SQLITE if is_sqlite else METERS_BY_ID_PG)
        self.after_lock = self._query(
            tuple((n, e.format(seq=seq)) for n, e in AFTER_LOCK_COLUMNS), AFTER_LOCK_FROM)
        self.stored = self._query(STORED_COLUMNS,
                                  "FROM transactions t WHERE t.request_id = :request_id")
        self.next_seq = self._query((("next_seq", seq),), "")
        self.key_by_krn = self._query((("key_id", "id"),),
                                      "FROM vending_keys WHERE sgc_id = :sgc_id AND krn = :krn")
        self.month = self._query(
            (("month_units", "units"), ("month_fixed_paid", "fixed_paid"),
             ("month_free_units", "free_units")),
            "FROM meter_months WHERE meter_id = :meter_id AND month = :month")
        self.insert_txn = self._sql(INSERT_TXN)
        self._combined: dict[tuple[str, ...], str] = {}

    def sql(self, text: str) -> str:
        """A statement written with `:name` parameters, for this backend's driver."""
        return self._sql(text)

    def _sql(self, text: str) -> str:
        out = self._text.get(text)
        if out is None:
            out = " ".join(text.split())
            out = out if self.is_sqlite else _PARAM.sub(r"%(\1)s", out)
            if len(self._text) < 256:
                self._text[text] = out
        return out

    def _query(self, columns: tuple[tuple[str, str], ...], rest: str) -> Query:
        select_list = ", ".join(f"{expr} AS {name}" for name, expr in columns)
        return Query(self._sql(f"SELECT {select_list} {rest}"), tuple(n for n, _ in columns))

    def money(self, value: Any) -> Decimal:
        """A money column's value as a Decimal (NULL as zero)."""
        out = self.money_out(value)
        return out if out is not None else Decimal(0)

    def write(self, cur: Any, writes: list[tuple[str, dict[str, Any]]]) -> int:
        """Run a transaction's writes (templates from this module, in order) and return the
        number of rows the last one changed (a sale puts its conditional float UPDATE last).

        SQLite runs them one by one under its write lock.  PostgreSQL gets them as one
        statement of data-modifying CTEs (one round trip, one parse): all of them run, and the
        caller rolls the transaction back if the last one changed nothing it needed.  No two
        of them may change the same row (a CTE statement sees one snapshot).
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
            if len(self._combined) < 256:
                self._combined[key] = sql
        merged = {f"{name}_{i}": value for i, (_, params) in enumerate(writes)
                  for name, value in params.items()}
        cur.execute(sql, merged)
        return int(cur.fetchone()[0])

    def execute_many(self, cur: Any, template: str, rows: list[dict[str, Any]]) -> None:
        """One statement for many rows (bulk writes: psycopg pipelines them)."""
        if rows:
            cur.executemany(self._sql(template), rows)

    def write_many(self, cur: Any, writes: dict[str, list[dict[str, Any]]]) -> None:
        """Many transactions' writes at once (campaign chunks), template by template in the
        order given (a row's parent first).  SQLite runs each template over its rows
        (`executemany`).  On PostgreSQL a plain INSERT (VALUES of parameters and literals)
        goes as COPY, and a plain UPDATE (SET and WHERE of `column = :param` only) as one
        UPDATE whose rows travel as one JSON array (`json_to_recordset`, one parameter, so
        psycopg keeps it prepared): a few statements per chunk instead of a few per meter.
        Anything else runs row by row."""
        for template, rows in writes.items():
            if not rows:
                continue
            bulk = None if self.is_sqlite else _bulk_form(template)
            if isinstance(bulk, _Copy) and bulk.naive(rows):
                make = bulk.row
                with cur.copy(bulk.sql) as copy:
                    for r in rows:
                        copy.write_row(make(r))
            elif isinstance(bulk, str) and (data := _json_rows(rows)) is not None:
                cur.execute(bulk, {"rows": data})
            else:
                cur.executemany(self._sql(template), rows)

    def ids_param(self, ids: list[int]) -> Any:
        """A list of ids as `meters_by_id` takes it (JSON text on SQLite, an array on
        PostgreSQL)."""
        return "[" + ",".join(str(int(i)) for i in ids) + "]" if self.is_sqlite else ids

    def execute(self, cur: Any, template: str, params: dict[str, Any]) -> int:
        """One statement from a template; the number of rows it changed."""
        cur.execute(self._sql(template), params)
        return int(cur.rowcount)

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """A DBAPI cursor inside `conn`'s transaction (begun here if it has not begun)."""
        if not conn.in_transaction():
            conn.begin()
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_INSERT_FORM = re.compile(r"^INSERT INTO (\w+) \(([\w\s,]+)\) VALUES \(([^()]*)\)$")
_UPDATE_FORM = re.compile(r"^UPDATE (\w+) SET (.+?) WHERE (.+)$")
_ASSIGN = re.compile(r"^(\w+) = :(\w+)$")
_LITERAL = re.compile(r"^(?:'[^']*'|-?\d+|NULL)$")


_AS_DEFAULT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _json_rows(rows: list[dict[str, Any]]) -> str | None:
    """The rows as one JSON array, or None if a value would not travel as the driver sends
    it."""
    try:
        return orjson.dumps(rows, default=_json_value, option=_AS_DEFAULT).decode()
    except TypeError:
        return None


def _json_value(value: Any) -> str:
    """A row value JSON carries as text for PostgreSQL to read (naive time stamps, as the
    columns hold them, and exact decimals); anything else sends the rows the usual way."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


@dataclass(frozen=True)
class _Copy:
    """COPY form of `INSERT INTO t (cols) VALUES (:params or literals)`: the statement, and
    a function giving a row's values in column order."""

    sql: str
    row: Callable[[dict[str, Any]], tuple[Any, ...]]
    stamps: tuple[str, ...]  # the time stamp parameters

    def naive(self, rows: list[dict[str, Any]]) -> bool:
        """Every time stamp naive, as the columns hold them (COPY would drop an offset that
        the driver's binding converts)."""
        return not any(getattr(r[p], "tzinfo", None) is not None
                       for r in rows for p in self.stamps)


def _row_maker(values: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Values in column order: the parameters' (one C call), then the literals."""
    names = [v[1:] for v in values if v.startswith(":")]
    literals = tuple(_literal(v) for v in values if not v.startswith(":"))
    if len(names) == 1:
        return lambda r: (r[names[0]], *literals)
    get = itemgetter(*names)
    return lambda r: get(r) + literals


def _literal(text: str) -> Any:
    if text == "NULL":
        return None
    return text[1:-1] if text.startswith("'") else int(text)


@lru_cache(maxsize=64)
def _bulk_form(template: str) -> _Copy | str | None:
    """How PostgreSQL runs a plain INSERT (COPY) or UPDATE (for every row of the JSON array
    `%(rows)s`, each row's parameters by name) template for many rows; None: row by row."""
    text = " ".join(template.split())
    insert = _INSERT_FORM.match(text)
    update = None if insert else _UPDATE_FORM.match(text)
    m = insert or update
    if m is None or m.group(1) not in metadata.tables:
        return None
    table = metadata.tables[m.group(1)]
    pairs: list[tuple[str, str]] = []  # (column, parameter or literal)
    if insert is not None:
        cols = [c.strip() for c in m.group(2).split(",")]
        values = [v.strip() for v in m.group(3).split(",")]
        if len(cols) != len(values):
            return None
        pairs = list(zip(cols, values, strict=True))
    else:
        sets = [_ASSIGN.match(a.strip()) for a in m.group(2).split(",")]
        keys = [_ASSIGN.match(a.strip()) for a in m.group(3).split(" AND ")]
        if not all(sets) or not all(keys):
            return None
        pairs = [(a.group(1), ":" + a.group(2)) for a in sets + keys if a is not None]
    types: dict[str, str] = {}
    for col, value in pairs:
        if col not in table.c:
            return None
        if value.startswith(":") and value[1:].isidentifier():
            cast = re.sub(r"\(.*\)", "", table.c[col].type.compile(dialect=_PG))
            if types.setdefault(value[1:], cast) != cast:
                return None
        elif not _LITERAL.match(value):
            return None
    if insert is not None:
        stamps = tuple(p for p, t in types.items() if t.startswith("TIMESTAMP"))
        pairs.sort(key=lambda cv: not cv[1].startswith(":"))  # the literals' columns last
        return _Copy(f"COPY {table.name} ({', '.join(c for c, _ in pairs)}) FROM STDIN",
                     _row_maker([v for _, v in pairs]), stamps)
    record = ", ".join(f'"{p}" {t}' for p, t in types.items())
    n_set = len(m.group(2).split(","))
    assign = ", ".join(f'{c} = u."{v[1:]}"' for c, v in pairs[:n_set])
    match = " AND ".join(f't.{c} = u."{v[1:]}"' for c, v in pairs[n_set:])
    return (f"UPDATE {table.name} AS t SET {assign} FROM json_to_recordset(%(rows)s::json) "
            f"AS u({record}) WHERE {match}")


def _last_one(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` remembering its last argument and result: a chunk converts one time stamp
    for every row it writes.  The pair is swapped as one object, so threads sharing it never
    see one call's argument with another's result."""
    last: list[tuple[Any, Any]] = [(object(), None)]

    def cached(value: Any) -> Any:
        seen, result = last[0]
        if value is seen or value == seen:
            return result
        result = convert(value)
        last[0] = (value, result)
        return result

    return cached


def _suffixed(template: str, i: int) -> str:
    return _PARAM.sub(lambda m: f":{m.group(1)}_{i}", template.strip())


def _same(value: Any) -> Any:
    return value


def _pg_money_in(value: Decimal | None) -> Decimal | None:
    if value is None or type(value) is Decimal:
        return value
    if isinstance(value, float):
        raise TypeError("money is never a float")
    return Decimal(value)


def _sqlite_money_in(value: Decimal | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money is never a float")
    if not value:
        return 0
    return int((Decimal(value) * MICRO).to_integral_value())


def _sqlite_money_out(value: Any) -> Decimal | None:
    return None if value is None else Decimal(int(value)) / MICRO
