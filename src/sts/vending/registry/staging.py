"""The database half of the meter import: a staging table, then set SQL into the registry.

Checked rows go into a temporary table (COPY on PostgreSQL, streamed while the file is still
being checked; executemany on SQLite), and everything after is a handful of statements in
the import's one transaction: conflicts with what is stored, new customers, new meters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from sts.vending.registry.files import Reject
from sts.vending.storage.database import Database

# one staging row per meter; `first_of_account` marks the row that brings its customer
STAGE_COLUMNS = ("line", "pan", "account_no", "name", "address", "phone", "first_of_account",
                 "tariff_id", "sgc_id", "key_id", "ti", "kt", "ken", "service", "mfr_code")
CREATE_STAGE = (
    "CREATE TEMPORARY TABLE import_meters (line INTEGER NOT NULL, pan VARCHAR(18) NOT NULL, "
    "account_no VARCHAR(40) NOT NULL, name VARCHAR(120) NOT NULL, address VARCHAR(300) NOT NULL, "
    "phone VARCHAR(30) NOT NULL, first_of_account SMALLINT NOT NULL, tariff_id INTEGER NOT NULL, "
    "sgc_id INTEGER NOT NULL, key_id INTEGER NOT NULL, ti INTEGER NOT NULL, kt INTEGER NOT NULL, "
    "ken INTEGER NOT NULL, service VARCHAR(12) NOT NULL, mfr_code VARCHAR(4) NOT NULL)")

Sink = Callable[[tuple[Any, ...]], None]


@contextmanager
def copy_sink(conn: Connection) -> Iterator[Sink]:
    """PostgreSQL: a COPY into the staging table, fed row by row while rows are checked."""
    conn.exec_driver_sql(CREATE_STAGE)
    conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")  # hashes and sorts of the merge
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        with cur.copy(f"COPY import_meters ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as cp:
            yield cp.write_row
        cur.execute("ANALYZE import_meters")  # temporary tables are never auto-analysed


def fill_sqlite(conn: Connection, staged: list[tuple[Any, ...]]) -> None:
    conn.exec_driver_sql(CREATE_STAGE)
    conn.exec_driver_sql(f"INSERT INTO import_meters VALUES ({','.join('?' * 15)})", staged)
    conn.exec_driver_sql("CREATE INDEX temp.ix_import_meters_pan ON import_meters (pan)")
    conn.exec_driver_sql("CREATE INDEX temp.ix_import_meters_acct ON import_meters "
                         "(account_no)")


def drop_stage(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE import_meters")


def conflicts(conn: Connection, limit: int = 100_000) -> list[Reject]:
    """Stored meters or customers that the file describes differently."""
    out: list[Reject] = []
    for r in conn.execute(text(
        "SELECT s.line, s.pan, s.tariff_id <> m.tariff_id AS tariff, "
        "s.sgc_id <> m.sgc_id AS sgc, s.key_id <> m.key_id AS krn, s.ti <> m.ti AS ti, "
        "s.kt <> m.kt AS kt, s.ken <> m.ken AS ken, s.service <> m.service AS service, "
        "s.account_no <> COALESCE(c.account_no, '') AS account_no "
        "FROM import_meters s JOIN meters m ON m.pan = s.pan "
        "LEFT JOIN customers c ON c.id = m.customer_id "
        "WHERE s.tariff_id <> m.tariff_id OR s.sgc_id <> m.sgc_id OR s.key_id <> m.key_id "
        "OR s.ti <> m.ti OR s.kt <> m.kt OR s.ken <> m.ken OR s.service <> m.service "
        "OR s.account_no <> COALESCE(c.account_no, '') ORDER BY s.line LIMIT :limit"),
            {"limit": limit}):
        fields = [f for f in ("sgc", "krn", "tariff", "ti", "kt", "ken", "service",
                              "account_no") if getattr(r, f)]
        out.append(Reject(r.line, fields[0], "conflict",
                          f"meter {r.pan} is registered with another {', '.join(fields)}; "
                          "the import does not overwrite it", r.pan))
    for r in conn.execute(text(
        "SELECT s.line, s.account_no FROM import_meters s "
        "JOIN customers c ON c.account_no = s.account_no "
        "WHERE s.first_of_account = 1 AND (s.name <> c.name OR s.address <> c.address "
        "OR s.phone <> c.phone) ORDER BY s.line LIMIT :limit"), {"limit": limit}):
        out.append(Reject(r.line, "account_no", "conflict",
                          f"customer {r.account_no} is registered with another name, address "
                          "or phone; the import does not overwrite it"))
    out.sort(key=lambda r: r.line)
    return out


def insert_customers(conn: Connection) -> int:
    """Add the customers the database lacks; returns how many."""
    return int(conn.execute(text(
        "INSERT INTO customers (account_no, name, address, phone, debt_balance) "
        "SELECT s.account_no, s.name, s.address, s.phone, 0 FROM import_meters s "
        "WHERE s.first_of_account = 1 AND NOT EXISTS "
        "(SELECT 1 FROM customers c WHERE c.account_no = s.account_no) "
        "ORDER BY s.line")).rowcount)


INSERT_METERS = (
    "INSERT INTO meters (pan, customer_id, tariff_id, sgc_id, key_id, ti, kt, ken, mfr_code, "
    "service, status, status_reason, last_tid, tid_epoch, max_epoch, last_hash, created_at) "
    "SELECT s.pan, c.id, s.tariff_id, s.sgc_id, s.key_id, s.ti, s.kt, s.ken, s.mfr_code, "
    "s.service, 'active', '', 0, 0, 0, '', :at FROM import_meters s "
    "LEFT JOIN customers c ON c.account_no = s.account_no "
    "WHERE NOT EXISTS (SELECT 1 FROM meters m WHERE m.pan = s.pan) ORDER BY s.line")


def insert_meters(db: Database, conn: Connection, at: datetime, bulk_rows: int) -> int:
    """Add the meters the database lacks; returns how many.

    PostgreSQL checks each foreign key of each inserted row with its own query (four per
    meter, most of the time of a large import).  From `bulk_rows` new meters on, the meters
    table's foreign keys are dropped for the insert and added back (validated with one query
    each) in the same transaction: same result, but the meters table is held exclusively
    until the import commits, so sales wait for it (at most `lock_timeout` to get the lock).
    """
    if db.is_sqlite:
        return int(conn.execute(text(INSERT_METERS), {"at": at}).rowcount)
    new = int(conn.scalar(text(
        "SELECT count(*) FROM import_meters s "
        "WHERE NOT EXISTS (SELECT 1 FROM meters m WHERE m.pan = s.pan)")) or 0)
    if new < bulk_rows:
        return int(conn.execute(text(INSERT_METERS), {"at": at}).rowcount)
    conn.exec_driver_sql("SET LOCAL lock_timeout = '15s'")
    conn.exec_driver_sql("LOCK TABLE meters IN ACCESS EXCLUSIVE MODE")
    fks = [(r.conname, r.definition) for r in conn.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        "WHERE conrelid = 'meters'::regclass AND contype = 'f' ORDER BY conname"))]
    for name, _ in fks:
        conn.exec_driver_sql(f'ALTER TABLE meters DROP CONSTRAINT "{name}"')
    done = int(conn.execute(text(INSERT_METERS), {"at": at}).rowcount)
    for name, definition in fks:
        conn.exec_driver_sql(f'ALTER TABLE meters ADD CONSTRAINT "{name}" {definition}')
    return done
