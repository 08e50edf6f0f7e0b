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

from sqlalchemy import func, select

from sts.errors import UnknownRecord
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
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

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(sep=" ", timespec="seconds"), "kind": self.kind,
                "reference": self.reference, "amount": money(self.amount),
                "balance": money(self.balance)}


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


def statement(db: Database, vendor: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Every float movement of [start, end) with the running balance, opening and closing."""
    t, f = transactions.c, float_movements.c
    with db.read() as conn:
        v = _vendor(conn, vendor)
        lines: list[Line] = []
        for r in conn.execute(select(f.created_at, f.kind, f.reference, f.amount)
                              .where(f.vendor_id == v.id, f.created_at >= start)
                              .order_by(f.id)):
            lines.append(Line(r.created_at, r.kind, r.reference, Decimal(r.amount)))
        for s in conn.execute(select(t.created_at, t.kind, t.seq, t.amount, meters.c.pan)
                              .join(meters, meters.c.id == t.meter_id)
                              .where(t.vendor_id == v.id, t.created_at >= start,
                                     t.kind.in_(("sale", "reversal")))
                              .order_by(t.seq)):
            lines.append(Line(s.created_at, s.kind, f"receipt {s.seq:010d} meter {s.pan}",
                              -Decimal(s.amount)))
    lines.sort(key=lambda ln: ln.at)  # stable: same-second rows keep their own order
    # walk back from today's balance to the opening balance of the period
    balance = Decimal(v.float_balance) - sum((ln.amount for ln in lines), Decimal(0))
    opening = closing = balance
    out: list[Line] = []
    for ln in lines:
        balance += ln.amount
        if ln.at < end:
            out.append(Line(ln.at, ln.kind, ln.reference, ln.amount, balance))
            closing = balance
    totals: dict[str, Decimal] = {k: Decimal(0) for k in ("top_up", "adjustment", "sale",
                                                          "reversal")}
    for ln in out:
        totals[ln.kind] += ln.amount
    return {"vendor": v.name, "start": start.isoformat(sep=" "), "end": end.isoformat(sep=" "),
            "opening": money(opening), "closing": money(closing),
            "totals": {k: money(x) for k, x in totals.items()},
            "lines": [ln.as_dict() for ln in out]}
