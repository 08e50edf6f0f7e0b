"""Tariff versions: every change of a tariff's prices and terms is a new version with the time
it takes effect (not before it is made), and every version is kept.

THE rule: a sale (and its trial, a lookup's limits) prices on the version in force at the
sale's own clock time: the newest-effective version whose `effective_from` is not after it.

The `tariffs` row holds the version that was in force when the tariff last changed, so the
hot path reads it with the meter as before; `tariffs.pending_from` names the earliest time a
later version takes effect.  Only a sale at or after that time asks `tariff_versions` for the
version in force (one indexed query), so an unchanged tariff costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection, func, insert, select, update

from sts.errors import InputError, UnknownRecord
from sts.vending.i18n import N_
from sts.vending.meters import MeterView
from sts.vending.storage.statements import HotSQL, Query
from sts.vending.storage.tables import tariffs
from sts.vending.storage.tables_office import tariff_versions
from sts.vending.tariff import Block, Tariff, money, parse_decimal, rate_str


class Acting(Protocol):
    """What a change needs of the registry (`sts.vending.registry.admin.Registry`)."""

    db: Any
    actor: str

    def _now(self) -> datetime: ...

    def _audit(self, conn: Connection, action: str, subject: str, **details: Any) -> None: ...

TERMS = ("description", "blocks", "vat_rate", "fixed_monthly", "debt_share", "free_units",
         "min_amount", "max_amount")
_IN_FORCE: dict[bool, Query] = {}


def _in_force_query(hot: HotSQL) -> Query:
    q = _IN_FORCE.get(hot.is_sqlite)
    if q is None:
        names = TERMS
        q = _IN_FORCE[hot.is_sqlite] = Query(hot.sql(
            f"SELECT {', '.join(names)} FROM tariff_versions "
            "WHERE tariff_id = :tariff_id AND effective_from <= :at "
            "ORDER BY effective_from DESC, version DESC LIMIT 1"), names)
    return q


def in_force(hot: HotSQL, cur: Any, m: MeterView, at: datetime) -> MeterView:
    """The meter with its tariff as in force at `at` (naive UTC, the sale's clock time)."""
    if m.tariff_pending_from is None or at < m.tariff_pending_from:
        return m
    row = _in_force_query(hot).one(cur, {"tariff_id": m.tariff_id, "at": hot.ts_in(at)})
    if row is None:
        return m
    dec = hot.money
    t = replace(m.tariff, description=row["description"],
                blocks=Tariff.blocks_from_json(row["blocks"]), vat_rate=dec(row["vat_rate"]),
                fixed_monthly=dec(row["fixed_monthly"]), debt_share=dec(row["debt_share"]),
                free_units=dec(row["free_units"]), min_amount=dec(row["min_amount"]),
                max_amount=hot.money_out(row["max_amount"]))
    return replace(m, tariff=t)


@dataclass(frozen=True)
class Terms:
    """A tariff's prices and terms as an operator gives them (text, checked here)."""

    blocks: list[tuple[str | None, str]]
    vat_rate: str = "0"
    fixed_monthly: str = "0"
    debt_share: str = "0"
    free_units: str = "0"
    min_amount: str = "0"
    max_amount: str | None = None
    description: str = ""

    def tariff(self, name: str, ti: int | None = None) -> Tariff:
        def dec(v: Any, f: str) -> Decimal:
            d = parse_decimal(v, f)
            assert d is not None
            return d

        return Tariff(
            name=name, description=self.description, ti=ti,
            blocks=tuple(Block(None if u in (None, "") else dec(u, f"blocks[{i}].up_to"),
                               dec(p, f"blocks[{i}].price"))
                         for i, (u, p) in enumerate(self.blocks)),
            vat_rate=dec(self.vat_rate, "vat_rate"),
            fixed_monthly=dec(self.fixed_monthly, "fixed_monthly"),
            debt_share=dec(self.debt_share, "debt_share"),
            free_units=dec(self.free_units, "free_units"),
            min_amount=dec(self.min_amount, "min_amount"),
            max_amount=parse_decimal(self.max_amount or None, "max_amount", allow_none=True))


def _values(t: Tariff) -> dict[str, Any]:
    return {"description": t.description, "blocks": t.blocks_json(), "vat_rate": t.vat_rate,
            "fixed_monthly": t.fixed_monthly, "debt_share": t.debt_share,
            "free_units": t.free_units, "min_amount": t.min_amount, "max_amount": t.max_amount}


def add_version(conn: Connection, tariff_id: int, t: Tariff, *, effective_from: datetime,
                actor: str, now: datetime) -> int:
    """Keep `t` as the tariff's next version from `effective_from` (naive UTC), then bring the
    tariffs row to the version in force at `now`; the new version's number."""
    number = int(conn.scalar(select(func.coalesce(func.max(tariff_versions.c.version), 0))
                             .where(tariff_versions.c.tariff_id == tariff_id)) or 0) + 1
    conn.execute(insert(tariff_versions).values(
        tariff_id=tariff_id, version=number, effective_from=effective_from, actor=actor,
        created_at=now, **_values(t)))
    refresh(conn, tariff_id, now)
    return number


def refresh(conn: Connection, tariff_id: int, now: datetime) -> None:
    """The tariffs row := the version in force at `now`; `pending_from` := the next change."""
    v = tariff_versions.c
    current = conn.execute(select(*(v[n] for n in TERMS))
                           .where(v.tariff_id == tariff_id, v.effective_from <= now)
                           .order_by(v.effective_from.desc(), v.version.desc()).limit(1)).first()
    pending = conn.scalar(select(func.min(v.effective_from))
                          .where(v.tariff_id == tariff_id, v.effective_from > now))
    values: dict[str, Any] = {"pending_from": pending}
    if current is not None:
        values |= {n: current._mapping[n] for n in TERMS}
    conn.execute(update(tariffs).where(tariffs.c.id == tariff_id).values(**values))


def change(reg: Acting, name: str, terms: Terms, *,
           effective_from: datetime | None = None) -> int:
    """A new version of tariff `name` from `effective_from` (naive UTC; default now), which
    may not be before now: sales already made keep the prices they were made on.  Audited;
    returns the version number."""
    now = reg._now()
    start = now if effective_from is None else effective_from.replace(microsecond=0)
    if start < now.replace(second=0):
        raise InputError("the effective time must not be before now: a change cannot reprice "
                         "sales already made", field="effective_from")
    start = max(start, now)
    with reg.db.begin() as conn:
        row = conn.execute(select(tariffs.c.id, tariffs.c.ti)
                           .where(tariffs.c.name == name)).first()
        if row is None:
            raise UnknownRecord(f"tariff {name!r} does not exist", field="tariff")
        t = terms.tariff(name, row.ti)
        number = add_version(conn, row.id, t, effective_from=start, actor=reg.actor, now=now)
        reg._audit(conn, "tariff.version", name, version=number,
                   effective_from=start.isoformat(sep=" "), blocks=t.blocks_json(),
                   vat_rate=rate_str(t.vat_rate), fixed_monthly=money(t.fixed_monthly))
    return number


def history(db: Any, name: str, now: datetime) -> list[dict[str, Any]]:
    """Every version of tariff `name`, newest first, each marked past / in force / scheduled
    as of `now` (naive UTC)."""
    v = tariff_versions.c
    with db.read() as conn:
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == name))
        if tid is None:
            raise UnknownRecord(f"tariff {name!r} does not exist", field="tariff")
        rows = conn.execute(select(v.version, v.effective_from, v.actor, v.created_at,
                                   *(v[n] for n in TERMS))
                            .where(v.tariff_id == tid)
                            .order_by(v.effective_from.desc(), v.version.desc())).all()
    out: list[dict[str, Any]] = []
    seen_in_force = False
    for r in rows:
        if r.effective_from > now:
            state = N_("scheduled")
        elif not seen_in_force:
            state, seen_in_force = N_("in force"), True
        else:
            state = N_("past")
        out.append({"version": r.version, "effective_from": r.effective_from,
                    "actor": r.actor, "created_at": r.created_at, "state": state,
                    "description": r.description,
                    "blocks": [{"up_to": None if b.up_to is None else f"{b.up_to.normalize():f}",
                                "price": f"{b.price.normalize():f}"}
                               for b in Tariff.blocks_from_json(r.blocks)],
                    "vat_rate": rate_str(Decimal(r.vat_rate)),
                    "fixed_monthly": money(Decimal(r.fixed_monthly)),
                    "min_amount": money(Decimal(r.min_amount)),
                    "max_amount": None if r.max_amount is None else money(Decimal(r.max_amount)),
                    "free_units": rate_str(Decimal(r.free_units)),
                    "debt_share": rate_str(Decimal(r.debt_share))})
    return out


def office_zone(db: Any) -> str:
    """The time zone the back office states effective times in: the first utility's."""
    from sts.vending.storage.tables import utilities

    with db.read() as conn:
        name = conn.scalar(select(utilities.c.time_zone).order_by(utilities.c.id).limit(1))
    return str(name or "UTC")


def parse_effective(text: str, zone_name: str) -> datetime | None:
    """An effective time as typed (`YYYY-MM-DDTHH:MM` or with a space, local time in
    `zone_name`) as naive UTC; None for blank (now)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        local_time = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise InputError("the effective time is a date and time such as 2026-07-01 00:00",
                         field="effective_from") from None
    if local_time.tzinfo is not None:
        raise InputError("give the effective time without a zone (it is local time)",
                         field="effective_from")
    from sts.vending.clock import utc, zone

    return utc(local_time.replace(tzinfo=zone(zone_name)))


def local_text(t: datetime, zone_name: str) -> str:
    """A naive UTC time as local time in `zone_name`, to the minute."""
    from sts.vending.clock import local

    return local(t, zone_name).strftime("%Y-%m-%d %H:%M")
