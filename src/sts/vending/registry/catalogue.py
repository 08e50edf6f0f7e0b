"""Back-office reads and the registry changes the CLI did not need yet: search meters,
list customers / tariffs / vendors / supply groups / API keys, change a tariff's prices,
move a meter to another tariff, a meter's recent sales (for reversals).

Changes go through the `Registry` (one transaction, audited under the acting operator).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update

from sts.errors import InputError, UnknownRecord
from sts.vending import tariff_history
from sts.vending.i18n import N_
from sts.vending.registry.admin import Registry
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
    api_keys,
    campaign_items,
    campaigns,
    customers,
    meters,
    operators,
    supply_groups,
    tariffs,
    transactions,
    utilities,
    vending_keys,
    vendor_sgcs,
    vendors,
)
from sts.vending.tariff import Tariff, money


def _plain(row: Any) -> dict[str, Any]:
    out = {}
    for k, v in row._mapping.items():
        out[k] = money(v) if isinstance(v, Decimal) else v
    return out


def _plain_number(value: Decimal) -> str:
    """50, 2.5, 0.15: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def search_meters(db: Database, query: str = "", *, limit: int = 50) -> list[dict[str, Any]]:
    """Meters whose number, customer name, account or address contains `query`."""
    m, c = meters.c, customers.c
    stmt = (select(m.pan, m.status, m.status_reason, m.ti, m.service, supply_groups.c.sgc,
                   vending_keys.c.krn, tariffs.c.name.label("tariff"),
                   c.name.label("customer"), c.account_no, c.address)
            .join(supply_groups, supply_groups.c.id == m.sgc_id)
            .join(vending_keys, vending_keys.c.id == m.key_id)
            .join(tariffs, tariffs.c.id == m.tariff_id)
            .outerjoin(customers, c.id == m.customer_id))
    q = query.strip()
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(m.pan.like(like), func.lower(c.name).like(like.lower()),
                              func.lower(c.address).like(like.lower()), c.account_no.like(like)))
    with db.read() as conn:
        return [_plain(r) for r in conn.execute(stmt.order_by(m.pan).limit(limit))]


def list_customers(db: Database, *, limit: int = 200) -> list[dict[str, Any]]:
    c = customers.c
    with db.read() as conn:
        rows = conn.execute(select(c.account_no, c.name, c.address, c.phone, c.debt_balance,
                                   func.count(meters.c.id).label("meters"))
                            .outerjoin(meters, meters.c.customer_id == c.id)
                            .group_by(c.id, c.account_no, c.name, c.address, c.phone,
                                      c.debt_balance)
                            .order_by(c.account_no).limit(limit))
        return [_plain(r) for r in rows]


def list_tariffs(db: Database) -> list[dict[str, Any]]:
    t = tariffs.c
    with db.read() as conn:
        rows = conn.execute(select(t.name, t.description, t.ti, t.blocks, t.vat_rate,
                                   t.fixed_monthly, t.debt_share, t.free_units, t.min_amount,
                                   t.max_amount).order_by(t.name)).all()
    out = []
    for r in rows:
        d = _plain(r)
        d["vat_rate"] = _plain_number(r.vat_rate)
        d["debt_share"] = _plain_number(r.debt_share)
        d["free_units"] = _plain_number(r.free_units)
        d["blocks"] = [{"up_to": None if b.up_to is None else _plain_number(b.up_to),
                        "price": _plain_number(b.price)}
                       for b in Tariff.blocks_from_json(r.blocks)]
        out.append(d)
    return out


def parse_blocks(text: str) -> list[tuple[str | None, str]]:
    """Price blocks as typed: one per line or ';'-separated, 'up_to:price' or a last open
    'price' (e.g. '50:1.20; 350:2.10; 3.40')."""
    parts = [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]
    if not parts:
        raise InputError(N_("give at least one price"), field="blocks")
    out: list[tuple[str | None, str]] = []
    for p in parts:
        if ":" in p:
            up, _, price = p.partition(":")
            out.append((up.strip(), price.strip()))
        else:
            out.append((None, p))
    return out


def update_tariff(reg: Registry, name: str, *, blocks: list[tuple[str | None, str]],
                  vat_rate: str, fixed_monthly: str, debt_share: str, free_units: str,
                  min_amount: str, max_amount: str | None, description: str,
                  effective_from: datetime | None = None) -> int:
    """New prices and terms for a tariff from `effective_from` (naive UTC, default now): a new
    version, the earlier ones kept (`sts.vending.tariff_history`)."""
    return tariff_history.change(reg, name, tariff_history.Terms(
        blocks=blocks, vat_rate=vat_rate, fixed_monthly=fixed_monthly, debt_share=debt_share,
        free_units=free_units, min_amount=min_amount, max_amount=max_amount,
        description=description), effective_from=effective_from)


def set_meter_tariff(reg: Registry, pan: str, tariff: str) -> None:
    """Move a meter to another tariff (its next sale is priced on it)."""
    with reg.db.begin() as conn:
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == tariff))
        if tid is None:
            raise UnknownRecord(N_("tariff {tariff} does not exist"), field="tariff",
                                tariff=repr(tariff))
        done = conn.execute(update(meters).where(meters.c.pan == pan).values(tariff_id=tid))
        if done.rowcount == 0:
            raise UnknownRecord(N_("meter {pan} does not exist"), field="meter", pan=pan)
        reg._audit(conn, "meter.tariff", pan, tariff=tariff)


def list_vendors(db: Database) -> list[dict[str, Any]]:
    v = vendors.c
    with db.read() as conn:
        rows = conn.execute(select(v.id, v.name, v.address, v.float_balance, v.status)
                            .order_by(v.name)).all()
        sgcs: dict[int, list[str]] = {}
        for r in conn.execute(select(vendor_sgcs.c.vendor_id, supply_groups.c.sgc)
                              .join(supply_groups, supply_groups.c.id == vendor_sgcs.c.sgc_id)):
            sgcs.setdefault(r.vendor_id, []).append(r.sgc)
    return [_plain(r) | {"sgcs": sorted(sgcs.get(r.id, []))} for r in rows]


def list_sgcs(db: Database) -> list[dict[str, Any]]:
    """Supply groups with their keys, meters per key and key change campaigns' progress."""
    sg, k = supply_groups.c, vending_keys.c
    with db.read() as conn:
        groups = conn.execute(select(sg.id, sg.sgc, sg.name, sg.current_key_id,
                                     utilities.c.name.label("utility"))
                              .join(utilities, utilities.c.id == sg.utility_id)
                              .order_by(sg.sgc)).all()
        keys = conn.execute(select(k.id, k.sgc_id, k.krn, k.key_type, k.ea, k.base_date,
                                   k.issued_until, func.count(meters.c.id).label("meters"))
                            .outerjoin(meters, meters.c.key_id == k.id)
                            .group_by(k.id, k.sgc_id, k.krn, k.key_type, k.ea, k.base_date,
                                      k.issued_until).order_by(k.krn)).all()
        camps = conn.execute(select(campaigns.c.name, campaigns.c.sgc_id, campaign_items.c.status,
                                    func.count().label("n"))
                             .join(campaign_items, campaign_items.c.campaign_id == campaigns.c.id)
                             .group_by(campaigns.c.name, campaigns.c.sgc_id,
                                       campaign_items.c.status)).all()
    out = []
    for g in groups:
        progress: dict[str, dict[str, int]] = {}
        for c in camps:
            if c.sgc_id == g.id:
                progress.setdefault(c.name, {"pending": 0, "done": 0, "failed": 0,
                                             "skipped": 0})[c.status] = int(c.n)
        out.append({"sgc": g.sgc, "name": g.name, "utility": g.utility,
                    "key_list": [{"krn": x.krn, "key_type": x.key_type, "ea": x.ea,
                              "base_date": x.base_date, "meters": int(x.meters),
                              "current": x.id == g.current_key_id} for x in keys
                             if x.sgc_id == g.id],
                    "campaigns": [{"name": n, **p, "total": sum(p.values())}
                                  for n, p in progress.items()]})
    return out


def list_api_keys(db: Database) -> list[dict[str, Any]]:
    k = api_keys.c
    with db.read() as conn:
        rows = conn.execute(select(k.prefix, k.role, k.label, k.created_at, k.revoked_at,
                                   vendors.c.name.label("vendor"),
                                   operators.c.username.label("operator"))
                            .outerjoin(vendors, vendors.c.id == k.vendor_id)
                            .outerjoin(operators, operators.c.id == k.operator_id)
                            .where(~k.label.like("web:%"))
                            .order_by(k.created_at.desc(), k.id.desc()))
        return [_plain(r) for r in rows]


def sales_of_meter(db: Database, pan: str, *, limit: int = 10,
                   vendor_id: int | None = None) -> list[dict[str, Any]]:
    """A meter's latest sales (what a supervisor picks a reversal from), of one vendor when
    `vendor_id` is given (the caller's scope)."""
    t = transactions.c
    with db.read() as conn:
        mid = conn.scalar(select(meters.c.id).where(meters.c.pan == pan))
        if mid is None:
            raise UnknownRecord(N_("meter {pan} does not exist"), field="meter", pan=pan)
        rows = conn.execute(select(t.seq, t.request_id, t.amount, t.units, t.status,
                                   t.created_at, vendors.c.name.label("vendor"))
                            .outerjoin(vendors, vendors.c.id == t.vendor_id)
                            .where(t.meter_id == mid, t.kind == "sale",
                                   *([t.vendor_id == vendor_id] if vendor_id is not None else []))
                            .order_by(t.seq.desc()).limit(limit))
        return [_plain(r) | {"receipt_no": f"{r.seq:010d}",
                             "units": str(r.units.quantize(Decimal('0.1')))} for r in rows]


def sale_by_receipt(db: Database, receipt_no: str, *, vendor_id: int | None = None) -> str:
    """The purchase id of a receipt number (of one vendor's sales when `vendor_id` is given)."""
    if not receipt_no.strip().isdigit():
        raise InputError(N_("a receipt number has digits only"), field="receipt_no")
    with db.read() as conn:
        rid = conn.scalar(select(transactions.c.request_id).where(
            transactions.c.seq == int(receipt_no), transactions.c.kind == "sale",
            *([transactions.c.vendor_id == vendor_id] if vendor_id is not None else [])))
    if rid is None:
        raise UnknownRecord(N_("no sale with receipt number {receipt_no}"), field="receipt_no",
                            receipt_no=receipt_no)
    return str(rid)


def choices(db: Database) -> dict[str, list[str]]:
    """Names for the back-office forms' drop-downs (short lists: customers, which run to
    millions, are typed by account number, never picked from a list)."""
    with db.read() as conn:
        return {
            "sgcs": [r[0] for r in conn.execute(select(supply_groups.c.sgc)
                                                .order_by(supply_groups.c.sgc))],
            "tariffs": [r[0] for r in conn.execute(select(tariffs.c.name).order_by(tariffs.c.name))],
            "vendors": [r[0] for r in conn.execute(select(vendors.c.name).order_by(vendors.c.name))],
        }
