"""Bulk meter import: a whole registry (a migration from another vending system, or the demo)
in one transaction.

Every row is checked first (meter number and check digit, SGC and vending key with the EA,
DKGA and base date the file claims, tariff, KT/TI/KRN ranges, customer fields); one bad row
refuses the whole file and every bad row is reported with its line number.  Good files are
loaded into a staging table (COPY on PostgreSQL, executemany on SQLite) and merged with set
SQL: meters already stored exactly as the file says are left alone, so re-importing a file
changes nothing; a stored meter or customer that the file describes differently is a
conflict, never overwritten.  One audit entry records the counts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from sts.codec.pan import parse_meter_number
from sts.engine.model import check_identity
from sts.errors import AlreadyExists, InputError, StsError
from sts.vending import audit
from sts.vending.db import Database
from sts.vending.meters import SERVICES
from sts.vending.models import supply_groups, tariffs, vending_keys

FORMATS = ("csv", "jsonl")
# header spellings accepted for each field (lower case; spaces and dashes read as "_")
ALIASES = {
    "meter": ("meter", "meter_number", "meter_no", "pan", "drn", "meter_pan"),
    "sgc": ("sgc", "supply_group", "supply_group_code"),
    "krn": ("krn", "key_revision", "key_revision_number"),
    "ti": ("ti", "tariff_index"),
    "kt": ("kt", "key_type"),
    "ea": ("ea", "encryption_algorithm"),
    "dkga": ("dkga", "key_generation_algorithm"),
    "base_date": ("base_date", "bd"),
    "ken": ("ken", "key_expiry_number"),
    "tariff": ("tariff", "tariff_name"),
    "service": ("service",),
    "account_no": ("account_no", "account", "account_number", "customer"),
    "name": ("name", "customer_name"),
    "address": ("address", "customer_address"),
    "phone": ("phone", "customer_phone"),
}
_FIELD_OF = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
LIMITS = {"account_no": 40, "name": 120, "address": 300, "phone": 30, "tariff": 80}
MAX_TEXT = 1000  # longest cell echoed back in a message or accepted at all

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Reject:
    """One refused row: its line in the file, the field and the rule it broke."""

    line: int
    field: str
    code: str
    message: str
    meter: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "field": self.field, "code": self.code,
                               "message": self.message}
        if self.meter:
            out["meter"] = self.meter
        return out


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    customers_added: int = 0
    rejected: list[Reject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.rejected if limit is None else self.rejected[:limit]
        return {"ok": self.ok, "rows": self.rows, "imported": self.imported,
                "unchanged": self.unchanged, "customers_added": self.customers_added,
                "rejected": len(self.rejected), "errors": [r.as_dict() for r in shown]}


@dataclass(frozen=True)
class _Key:
    id: int
    sgc_id: int
    krn: int
    ea: int
    dkga: int
    base_date: int
    ken: int


@dataclass
class _Refs:
    """What rows are checked against: SGCs (with their current key), keys, tariffs."""

    sgcs: dict[str, tuple[int, int | None]]
    keys: dict[tuple[str, int], _Key]
    keys_by_id: dict[int, _Key]
    tariffs: dict[str, int]

    @classmethod
    def load(cls, conn: Connection) -> _Refs:
        sg = {r.sgc: (r.id, r.current_key_id) for r in conn.execute(
            select(supply_groups.c.sgc, supply_groups.c.id, supply_groups.c.current_key_id))}
        sgc_of = {sid: sgc for sgc, (sid, _) in sg.items()}
        k = vending_keys.c
        keys: dict[tuple[str, int], _Key] = {}
        for r in conn.execute(select(k.id, k.sgc_id, k.krn, k.ea, k.dkga, k.base_date, k.ken)):
            keys[(sgc_of[r.sgc_id], r.krn)] = _Key(r.id, r.sgc_id, r.krn, r.ea, r.dkga,
                                                  r.base_date, r.ken)
        tf = {r.name: r.id for r in conn.execute(select(tariffs.c.name, tariffs.c.id))}
        return cls(sg, keys, {v.id: v for v in keys.values()}, tf)


class _Bad(Exception):
    def __init__(self, field: str, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


class _Refused(Exception):
    """Conflicts found after staging: roll the transaction back."""


# --- reading files --------------------------------------------------------------------------

Row = tuple[int, Mapping[str, Any] | Reject]


def detect_format(path: str, head: bytes) -> str:
    low = path.lower()
    if low.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if low.endswith((".csv", ".txt")):
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[Row]:
    """(line number, fields) per record; unreadable records come as a Reject."""
    if fmt == "csv":
        return _read_csv(stream)
    if fmt == "jsonl":
        return _read_jsonl(stream)
    raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", field="format")


def _canon(header: str) -> str:
    h = header.strip().lower().replace(" ", "_").replace("-", "_")
    return _FIELD_OF.get(h, h)


def _read_csv(stream: IO[bytes]) -> Iterator[Row]:
    textual = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(textual)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [_canon(h) for h in header]
        _check_header(names)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                yield line, Reject(line, "row", "invalid_input",
                                   f"line has {len(cells)} cells, the header {len(names)}")
                continue
            yield line, dict(zip(names, cells, strict=True))
    except UnicodeDecodeError:
        raise InputError(f"the file is not UTF-8 text (near line {reader.line_num + 1})",
                         field="file") from None
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: not valid CSV ({exc})", field="file") from None


def _check_header(names: list[str]) -> None:
    if "meter" not in names:
        raise InputError("the header needs a meter column (meter, meter_number or pan)",
                         field="header")
    unknown = [n for n in names if n not in ALIASES]
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(map(repr, unknown[:5]))}; known: "
                         f"{', '.join(ALIASES)}", field="header")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"column(s) given twice: {', '.join(sorted(dup))}", field="header")


def _read_jsonl(stream: IO[bytes]) -> Iterator[Row]:
    for line, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield line, Reject(line, "row", "invalid_input", "the line is not UTF-8 text")
            continue
        except (ValueError, RecursionError):
            yield line, Reject(line, "row", "invalid_input", "the line is not valid JSON")
            continue
        if not isinstance(obj, dict):
            yield line, Reject(line, "row", "invalid_input", "each line must be a JSON object")
            continue
        names = {k: _canon(k) for k in obj}
        unknown = [k for k, n in names.items() if n not in ALIASES]
        if unknown:
            yield line, Reject(line, unknown[0][:40], "invalid_input",
                               f"unknown field {unknown[0][:40]!r}; known: {', '.join(ALIASES)}")
            continue
        yield line, {names[k]: v for k, v in obj.items()}


# --- checking rows ---------------------------------------------------------------------------

def _text(row: Mapping[str, Any], name: str) -> str:
    v = row.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _Bad(name, f"{name} must be text")
    v = v.strip()
    limit = LIMITS.get(name, MAX_TEXT)
    if len(v) > limit:
        raise _Bad(name, f"{name} must have at most {limit} characters, got {len(v)}")
    return v


def _int(row: Mapping[str, Any], name: str) -> int | None:
    v = row.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise _Bad(name, f"{name} must be a whole number, got a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and len(v.strip()) <= 6 and v.strip().isascii() \
            and v.strip().isdigit():
        return int(v.strip())
    shown = v[:20] if isinstance(v, str) else type(v).__name__
    raise _Bad(name, f"{name} must be a whole number of ASCII digits, got {shown!r}")


@dataclass
class _Checker:
    refs: _Refs
    seen: dict[str, int] = field(default_factory=dict)  # PAN -> line
    customers: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)

    def check(self, line: int, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The staging tuple for a good row; raises _Bad naming the field and the rule."""
        try:
            mp = parse_meter_number(row.get("meter"), field="meter")
        except StsError as exc:
            raise _Bad("meter", exc.message, exc.code) from None
        pan = mp.pan
        first = self.seen.get(pan)
        if first is not None:
            raise _Bad("meter", f"meter {pan} is already on line {first} of this file",
                       "duplicate")
        sgc = _text(row, "sgc")
        if not sgc:
            raise _Bad("sgc", "sgc is required")
        krn, ti, kt = _int(row, "krn"), _int(row, "ti"), _int(row, "kt")
        ti = 1 if ti is None else ti
        kt = 2 if kt is None else kt
        try:
            check_identity(kt=kt, sgc=sgc, ti=ti, krn=1 if krn is None else krn)
        except InputError as exc:
            raise _Bad(exc.field or "meter", exc.message) from None
        sg = self.refs.sgcs.get(sgc)
        if sg is None:
            raise _Bad("sgc", f"SGC {sgc} does not exist", "unknown_record")
        if krn is None:
            key = self.refs.keys_by_id.get(sg[1]) if sg[1] is not None else None
            if key is None:
                raise _Bad("krn", f"SGC {sgc} has no current vending key: give krn",
                           "unknown_record")
        else:
            found = self.refs.keys.get((sgc, krn))
            if found is None:
                raise _Bad("krn", f"SGC {sgc} has no vending key KRN {krn}", "unknown_record")
            key = found
        for name in ("ea", "dkga", "base_date"):
            claimed = _int(row, name)
            held = getattr(key, name)
            if claimed is not None and claimed != held:
                raise _Bad(name, f"{name} {claimed} does not match the stored key SGC {sgc} "
                                 f"KRN {key.krn} ({name} {held})", "mismatch")
        ken = _int(row, "ken")
        if ken is None:
            ken = key.ken
        elif not 0 <= ken <= 255:
            raise _Bad("ken", f"ken must be 0..255, got {ken}")
        tariff = _text(row, "tariff")
        if not tariff:
            raise _Bad("tariff", "tariff is required")
        tariff_id = self.refs.tariffs.get(tariff)
        if tariff_id is None:
            raise _Bad("tariff", f"tariff {tariff!r} does not exist", "unknown_record")
        service = _text(row, "service") or "electricity"
        if service not in SERVICES:
            raise _Bad("service", f"service must be one of {', '.join(SERVICES)}")
        acct = _text(row, "account_no")
        name, address, phone = _text(row, "name"), _text(row, "address"), _text(row, "phone")
        if acct:
            if not name:
                raise _Bad("name", f"account {acct} needs the customer's name")
            known = self.customers.get(acct)
            if known is None:
                self.customers[acct] = (name, address, phone, line)
            elif known[:3] != (name, address, phone):
                raise _Bad("account_no", f"account {acct} is on line {known[3]} with another "
                                         "name, address or phone", "conflict")
        elif name or address or phone:
            raise _Bad("account_no", "customer fields need an account number")
        self.seen[pan] = line
        return (line, pan, acct, tariff_id, sg[0], key.id, ti, kt, ken, mp.mfr_code, service)


# --- the import ------------------------------------------------------------------------------

STAGE_COLUMNS = ("line", "pan", "account_no", "tariff_id", "sgc_id", "key_id", "ti", "kt",
                 "ken", "mfr_code", "service")
CUST_COLUMNS = ("account_no", "name", "address", "phone", "line")


def import_meters(db: Database, rows: Iterable[Row], *, actor: str, at: datetime,
                  source: str = "", progress: Progress | None = None) -> ImportResult:
    """Check every row, then (if all are good) add the new meters and customers in one
    transaction.  Any rejected row or conflict leaves the database untouched."""
    res = ImportResult()
    with db.read() as conn:
        refs = _Refs.load(conn)
    checker = _Checker(refs)
    staged: list[tuple[Any, ...]] = []
    for line, row in rows:
        res.rows += 1
        if isinstance(row, Reject):
            res.rejected.append(row)
            continue
        try:
            staged.append(checker.check(line, row))
        except _Bad as bad:
            shown = row.get("meter")
            res.rejected.append(Reject(line, bad.field, bad.code, bad.message,
                                       shown[:40] if isinstance(shown, str) else ""))
        if progress is not None and res.rows % 10_000 == 0:
            progress("checked", res.rows)
    if progress is not None:
        progress("checked", res.rows)
    if res.rejected or not staged:
        return res
    custs = [(a, n, ad, ph, ln) for a, (n, ad, ph, ln) in checker.customers.items()]
    try:
        with db.begin() as conn:
            _stage(db, conn, staged, custs)
            if progress is not None:
                progress("staged", len(staged))
            res.rejected = _conflicts(conn)
            if res.rejected:
                raise _Refused
            res.customers_added = _merge(conn, at)
            res.imported = int(conn.execute(text(
                "INSERT INTO meters (pan, customer_id, tariff_id, sgc_id, key_id, ti, kt, ken, "
                "mfr_code, service, status, status_reason, last_tid, tid_epoch, max_epoch, "
                "last_hash, created_at) "
                "SELECT s.pan, c.id, s.tariff_id, s.sgc_id, s.key_id, s.ti, s.kt, s.ken, "
                "s.mfr_code, s.service, 'active', '', 0, 0, 0, '', :at FROM import_meters s "
                "LEFT JOIN customers c ON c.account_no = s.account_no "
                "WHERE NOT EXISTS (SELECT 1 FROM meters m WHERE m.pan = s.pan) ORDER BY s.line"),
                {"at": at}).rowcount)
            res.unchanged = len(staged) - res.imported
            conn.exec_driver_sql("DROP TABLE import_meters")
            conn.exec_driver_sql("DROP TABLE import_customers")
            if res.imported or res.customers_added:
                audit.append(db, conn, at=at, actor=actor, action="meter.import",
                             subject=(source or "rows")[-120:],
                             details={"rows": res.rows, "imported": res.imported,
                                      "unchanged": res.unchanged,
                                      "customers_added": res.customers_added})
    except _Refused:
        return res  # the transaction (staging tables included) was rolled back
    except IntegrityError:
        raise AlreadyExists("another process registered some of these meters or customers "
                            "while the import ran; nothing was imported: run it again",
                            field="meter") from None
    if progress is not None:
        progress("done", len(staged))
    return res


def _stage(db: Database, conn: Connection, staged: list[tuple[Any, ...]],
           custs: list[tuple[str, str, str, str, int]]) -> None:
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE import_meters (line INTEGER NOT NULL, pan VARCHAR(18) NOT NULL, "
        "account_no VARCHAR(40) NOT NULL, tariff_id INTEGER NOT NULL, sgc_id INTEGER NOT NULL, "
        "key_id INTEGER NOT NULL, ti INTEGER NOT NULL, kt INTEGER NOT NULL, ken INTEGER NOT NULL, "
        "mfr_code VARCHAR(4) NOT NULL, service VARCHAR(12) NOT NULL)")
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE import_customers (account_no VARCHAR(40) NOT NULL, "
        "name VARCHAR(120) NOT NULL, address VARCHAR(300) NOT NULL, phone VARCHAR(30) NOT NULL, "
        "line INTEGER NOT NULL)")
    if db.is_sqlite:
        conn.exec_driver_sql(f"INSERT INTO import_meters VALUES ({','.join('?' * 11)})", staged)
        if custs:
            conn.exec_driver_sql("INSERT INTO import_customers VALUES (?,?,?,?,?)", custs)
        conn.exec_driver_sql("CREATE INDEX temp.ix_import_meters_pan ON import_meters (pan)")
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        with cur.copy(f"COPY import_meters ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as cp:
            for t in staged:
                cp.write_row(t)
        if custs:
            with cur.copy(f"COPY import_customers ({', '.join(CUST_COLUMNS)}) FROM STDIN") as cp:
                for c in custs:
                    cp.write_row(c)
        cur.execute("ANALYZE import_meters")
        cur.execute("ANALYZE import_customers")


def _conflicts(conn: Connection) -> list[Reject]:
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
        "OR s.account_no <> COALESCE(c.account_no, '') ORDER BY s.line LIMIT 100000")):
        fields = [f for f in ("sgc", "krn", "tariff", "ti", "kt", "ken", "service",
                              "account_no") if getattr(r, f)]
        out.append(Reject(r.line, fields[0], "conflict",
                          f"meter {r.pan} is registered with another {', '.join(fields)}; "
                          "the import does not overwrite it", r.pan))
    for r in conn.execute(text(
        "SELECT s.line, s.account_no FROM import_customers s "
        "JOIN customers c ON c.account_no = s.account_no "
        "WHERE s.name <> c.name OR s.address <> c.address OR s.phone <> c.phone "
        "ORDER BY s.line LIMIT 100000")):
        out.append(Reject(r.line, "account_no", "conflict",
                          f"customer {r.account_no} is registered with another name, address "
                          "or phone; the import does not overwrite it"))
    out.sort(key=lambda r: r.line)
    return out


def _merge(conn: Connection, at: datetime) -> int:
    """Add the customers the database lacks; returns how many."""
    del at
    return int(conn.execute(text(
        "INSERT INTO customers (account_no, name, address, phone, debt_balance) "
        "SELECT s.account_no, s.name, s.address, s.phone, 0 FROM import_customers s "
        "WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.account_no = s.account_no) "
        "ORDER BY s.line")).rowcount)


def import_file(db: Database, path: str | Path, *, actor: str, at: datetime,
                fmt: str | None = None, progress: Progress | None = None) -> ImportResult:
    """Import a CSV or JSON Lines file (format from the name or the first character)."""
    p = Path(path)
    try:
        stream = p.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}", field="file") from None
    with stream:
        head = stream.peek(64) if isinstance(stream, io.BufferedReader) else b""
        return import_meters(db, read_rows(stream, fmt or detect_format(str(p), head)),
                             actor=actor, at=at, source=p.name, progress=progress)
