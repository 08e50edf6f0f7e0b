"""Bulk meter import: a whole registry (a migration from another vending system, or the demo)
in one transaction.

Every row is checked first (meter number and check digit, SGC and vending key with the EA,
DKGA and base date the file claims, tariff, KT/TI/KRN ranges, customer fields); one bad row
refuses the whole file and every bad row is reported with its line number.  Good rows go
into a staging table and are merged with set SQL (sts.vending.registry.staging): meters already
stored exactly as the file says are left alone, so re-importing a file changes nothing; a
stored meter or customer that the file describes differently is a conflict, never
overwritten.  One audit entry records the counts.  Files: sts.vending.registry.files.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError, OperationalError

from sts.codec.pan import parse_meter_number
from sts.engine.model import check_identity
from sts.errors import AlreadyExists, InputError, StsError, Unavailable
from sts.vending import audit
from sts.vending.i18n import N_
from sts.vending.meters import SERVICES
from sts.vending.registry import staging as stage
from sts.vending.registry.files import Reject, Row, detect_format, read_rows
from sts.vending.storage.database import Database
from sts.vending.storage.tables import supply_groups, tariffs, vending_keys

LIMITS = {"account_no": 40, "name": 120, "address": 300, "phone": 30, "tariff": 80}
MAX_TEXT = 1000  # longest cell echoed back in a message or accepted at all
BULK_ROWS = 50_000  # new meters from which PostgreSQL re-checks foreign keys once (see below)

Progress = Callable[[str, int], None]


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
    if "\x00" in v:
        raise _Bad(name, f"{name} must not contain NUL characters")
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

    identities: dict[tuple[Any, ...], tuple[Any, ...] | _Bad] = field(default_factory=dict)

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
        # a registry has few distinct SGC/key/tariff combinations: check each one once
        get = row.get
        sig: tuple[Any, ...] | None = (
            get("sgc"), get("krn"), get("ti"), get("kt"), get("ea"), get("dkga"),
            get("base_date"), get("ken"), get("tariff"), get("service"))
        try:
            ident = self.identities.get(sig) if sig is not None else None
        except TypeError:  # an unhashable JSON value: checked (and refused) below
            ident, sig = None, None
        if ident is None:
            try:
                ident = self._identity(row)
            except _Bad as bad:
                ident = bad
            if sig is not None:
                self.identities[sig] = ident
        if isinstance(ident, _Bad):
            raise _Bad(ident.field, ident.message, ident.code)
        acct = _text(row, "account_no")
        name, address, phone = _text(row, "name"), _text(row, "address"), _text(row, "phone")
        first = 0
        if acct:
            if not name:
                raise _Bad("name", f"account {acct} needs the customer's name")
            known = self.customers.get(acct)
            if known is None:
                self.customers[acct] = (name, address, phone, line)
                first = 1
            elif known[:3] != (name, address, phone):
                raise _Bad("account_no", f"account {acct} is on line {known[3]} with another "
                                         "name, address or phone", "conflict")
        elif name or address or phone:
            raise _Bad("account_no", "customer fields need an account number")
        self.seen[pan] = line
        return (line, pan, acct, name, address, phone, first, *ident, mp.mfr_code)

    def _identity(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """(tariff_id, sgc_id, key_id, ti, kt, ken, service) for the row's key fields."""
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
        return (tariff_id, sg[0], key.id, ti, kt, ken, service)


# --- the import ------------------------------------------------------------------------------

def import_meters(db: Database, rows: Iterable[Row], *, actor: str, at: datetime,
                  source: str = "", progress: Progress | None = None,
                  bulk_rows: int = BULK_ROWS) -> ImportResult:
    """Check every row and, if all are good, add the new meters and customers in one
    transaction.  Any rejected row or conflict leaves the database untouched.

    On PostgreSQL the checked rows stream into the staging table while the file is read (the
    transaction holds no lock on the registry until the merge); on SQLite, whose one writer
    would block sales meanwhile, the file is checked first and staged afterwards.
    """
    res = ImportResult()
    with db.read() as conn:
        checker = _Checker(_Refs.load(conn))
    try:
        if db.is_sqlite:
            staged: list[tuple[Any, ...]] = []
            _check_all(checker, rows, res, staged.append, progress)
            if res.rejected or not staged:
                return res
            with db.begin() as conn:
                stage.fill_sqlite(conn, staged)
                _merge(db, conn, res, actor=actor, at=at, source=source, progress=progress,
                       bulk_rows=bulk_rows)
        else:
            with db.begin() as conn:
                with stage.copy_sink(conn) as sink:
                    _check_all(checker, rows, res, sink, progress)
                if res.rejected or not checker.seen:
                    raise _Refused
                _merge(db, conn, res, actor=actor, at=at, source=source, progress=progress,
                       bulk_rows=bulk_rows)
    except _Refused:
        return res  # the transaction (staging table included) was rolled back
    except OperationalError as exc:
        if "lock" in str(exc).lower():
            raise Unavailable(N_("the meters table is busy (sales in progress); nothing was "
                                 "imported: run the import again in a quieter moment")) from None
        raise
    except IntegrityError:
        raise AlreadyExists(N_("another process registered some of these meters or customers "
                               "while the import ran; nothing was imported: run it again"),
                            field="meter") from None
    if progress is not None:
        progress("done", res.rows)
    return res


def _check_all(checker: _Checker, rows: Iterable[Row], res: ImportResult,
               sink: Callable[[tuple[Any, ...]], None], progress: Progress | None) -> None:
    """Check every row; good ones go to `sink` until the first bad one (then none will be
    imported, but the rest are still checked so every bad line is reported)."""
    for line, row in rows:
        res.rows += 1
        if isinstance(row, Reject):
            res.rejected.append(row)
            continue
        try:
            staged = checker.check(line, row)
        except _Bad as bad:
            shown = row.get("meter")
            res.rejected.append(Reject(line, bad.field, bad.code, bad.message,
                                       shown[:40] if isinstance(shown, str) else ""))
        else:
            if not res.rejected:
                sink(staged)
        if progress is not None and res.rows % 10_000 == 0:
            progress("checked", res.rows)
    if progress is not None:
        progress("checked", res.rows)


def _merge(db: Database, conn: Connection, res: ImportResult, *, actor: str, at: datetime,
           source: str, progress: Progress | None, bulk_rows: int) -> None:
    """Staged rows into the registry (inside the caller's transaction)."""
    res.rejected = stage.conflicts(conn)
    if res.rejected:
        raise _Refused
    if progress is not None:
        progress("compared", res.rows)
    res.customers_added = stage.insert_customers(conn)
    if progress is not None:
        progress("customers", res.customers_added)
    res.imported = stage.insert_meters(db, conn, at, bulk_rows)
    res.unchanged = res.rows - res.imported
    stage.drop_stage(conn)
    if res.imported or res.customers_added:
        audit.append(db, conn, at=at, actor=actor, action="meter.import",
                     subject=(source or "rows")[-120:],
                     details={"rows": res.rows, "imported": res.imported,
                              "unchanged": res.unchanged,
                              "customers_added": res.customers_added})


def import_file(db: Database, path: str | Path, *, actor: str, at: datetime,
                fmt: str | None = None, progress: Progress | None = None) -> ImportResult:
    """Import a CSV or JSON Lines file (format from the name or the first character)."""
    p = Path(path)
    try:
        stream = p.open("rb")
    except OSError as exc:
        raise InputError(N_("cannot read {path}: {why}"), field="file", path=str(p),
                         why=str(exc.strerror)) from None
    with stream:
        head = stream.peek(64) if isinstance(stream, io.BufferedReader) else b""
        return import_meters(db, read_rows(stream, fmt or detect_format(str(p), head)),
                             actor=actor, at=at, source=p.name, progress=progress)
