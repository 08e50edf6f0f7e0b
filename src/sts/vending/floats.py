"""Vendor floats: top-ups with a reference, and the vendor's statement.

A sale takes its amount from the vendor's float inside the sale's own transaction (service);
a reversal gives it back.  Everything else that moves a float is a row here, written in the
same transaction as the balance change, so the statement always adds up to the balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, null, select, type_coerce, union_all

from sts.codec.pan import printed_number
from sts.errors import UnknownRecord
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
    Money,
    meters,
    supply_groups,
    transactions,
    utilities,
    vendor_sgcs,
    vendors,
)
from sts.vending.storage.tables_office import float_movements
from sts.vending.tariff import money

KINDS = ("top_up", "adjustment")


@dataclass(frozen=True)
class Line:
    at: datetime
    kind: str  # top_up / adjustment / sale / reversal
    reference: str
    amount: Decimal  # effect on the float
    balance: Decimal = Decimal(0)
    receipt_no: str = ""  # a sale's or reversal's own receipt, and its meter as printed
    meter: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(sep=" ", timespec="seconds"), "kind": self.kind,
                "reference": self.reference, "amount": money(self.amount),
                "balance": money(self.balance), "receipt_no": self.receipt_no,
                "meter": self.meter}


def approval_limit(conn: Any, vendor: str) -> Decimal | None:
    """The amount above which a top-up of `vendor`'s float waits for a second approver: the
    strictest of the utilities the vendor sells for (of every utility when it sells for none
    yet); None when no utility asks for one."""
    u = utilities.c
    of_vendor = (select(func.min(u.top_up_approval_above))
                 .join(supply_groups, supply_groups.c.utility_id == u.id)
                 .join(vendor_sgcs, vendor_sgcs.c.sgc_id == supply_groups.c.id)
                 .join(vendors, vendors.c.id == vendor_sgcs.c.vendor_id)
                 .where(vendors.c.name == vendor))
    limit = conn.scalar(of_vendor)
    if limit is None:
        sells = conn.scalar(select(func.count()).select_from(vendor_sgcs)
                            .join(vendors, vendors.c.id == vendor_sgcs.c.vendor_id)
                            .where(vendors.c.name == vendor))
        if not sells:
            limit = conn.scalar(select(func.min(u.top_up_approval_above)))
    return None if limit is None else Decimal(limit)


def needs_approval(conn: Any, vendor: str, value: Decimal, kind: str) -> Decimal | None:
    """The approval amount that `value` exceeds (a top-up only), else None: THE four-eyes
    rule on money."""
    if kind != "top_up":
        return None
    limit = approval_limit(conn, vendor)
    return limit if limit is not None and value > limit else None


def _vendor(conn: Any, vendor: str) -> Any:
    row = conn.execute(select(vendors.c.id, vendors.c.name, vendors.c.float_balance)
                       .where(vendors.c.name == vendor)).first()
    if row is None:
        raise UnknownRecord(f"vendor {vendor!r} does not exist", field="vendor")
    return row


def _movements(vendor_id: int, start: datetime) -> Any:
    """Every movement of the vendor's float from `start` on, as one query: (at, src, n,
    kind, reference, pan, seq, amount), `amount` its effect on the float; ordered by (at,
    src, n), top-ups and adjustments before the sales of the same second, as they were
    written."""
    t, f = transactions.c, float_movements.c
    floats_ = select(f.created_at.label("at"), literal(0).label("src"), f.id.label("n"),
                     f.kind.label("kind"), f.reference.label("reference"),
                     null().label("pan"), null().label("seq"),
                     type_coerce(f.amount, Money).label("amount")
                     ).where(f.vendor_id == vendor_id, f.created_at >= start)
    sales = (select(t.created_at, literal(1), t.seq, t.kind, null(), meters.c.pan, t.seq,
                    type_coerce(-t.amount, Money))
             .join(meters, meters.c.id == t.meter_id)
             .where(t.vendor_id == vendor_id, t.created_at >= start,
                    t.kind.in_(("sale", "reversal"))))
    return union_all(floats_, sales).subquery("movements")


def _line(r: Any, opening: Decimal) -> Line:
    """A statement line: a top-up or adjustment by its reference, a sale or reversal by its
    receipt number and the number printed on its meter."""
    balance = opening + Decimal(r.run)
    if r.pan is None:
        return Line(r.at, r.kind, r.reference, Decimal(r.amount), balance)
    receipt, meter = f"{r.seq:010d}", printed_number(r.pan)
    return Line(r.at, r.kind, f"receipt {receipt} meter {meter}", Decimal(r.amount), balance,
                receipt, meter)


def statement(db: Database, vendor: str, start: datetime, end: datetime, *,
              page: int | None = None, size: int = 100) -> dict[str, Any]:
    """The float movements of [start, end) with the running balance, opening, closing and
    totals per kind; the lines of one page (`page`, `size`) or, with no page, all of them
    (the CSV).  The sums are the database's: a busy vendor's month is never read whole to
    show a page of it; the opening balance is today's less everything since `start`."""
    with db.read() as conn:
        v = _vendor(conn, vendor)
        m = _movements(v.id, start)
        since = Decimal(conn.scalar(select(func.coalesce(
            func.sum(m.c.amount), type_coerce(0, Money)))) or 0)
        opening = Decimal(v.float_balance) - since
        totals: dict[str, Decimal] = {k: Decimal(0) for k in (*KINDS, "sale", "reversal")}
        count = 0
        for r in conn.execute(select(m.c.kind, func.count().label("n"),
                                     type_coerce(func.sum(m.c.amount), Money).label("total"))
                              .where(m.c.at < end).group_by(m.c.kind)):
            totals[r.kind] = Decimal(r.total or 0)
            count += int(r.n)
        running = func.sum(m.c.amount).over(order_by=(m.c.at, m.c.src, m.c.n),
                                            rows=(None, 0))
        lines = (select(m.c.at, m.c.kind, m.c.reference, m.c.pan, m.c.seq, m.c.amount,
                        type_coerce(running, Money).label("run"))
                 .where(m.c.at < end).order_by(m.c.at, m.c.src, m.c.n))
        if page is not None:
            lines = lines.limit(size).offset((page - 1) * size)
        out = [_line(r, opening).as_dict() for r in conn.execute(lines)]
    return {"vendor": v.name, "start": start.isoformat(sep=" "), "end": end.isoformat(sep=" "),
            "opening": money(opening), "closing": money(opening + sum(totals.values())),
            "totals": {k: money(x) for k, x in totals.items()}, "count": count,
            "lines": out}
