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

from sqlalchemy import insert, select, update

from sts.errors import InputError, UnknownRecord
from sts.vending.db import Database
from sts.vending.models import meters, transactions, vendors
from sts.vending.models_web import float_movements
from sts.vending.registry import Registry
from sts.vending.tariff import money, parse_decimal

KINDS = ("top_up", "adjustment")


def top_up(reg: Registry, vendor: str, amount: str, reference: str, *,
           kind: str = "top_up") -> Decimal:
    """Add (or for an adjustment, add or take) money to a vendor's float; the new balance."""
    value = parse_decimal(amount, "amount")
    assert value is not None
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if kind == "top_up" and value <= 0:
        raise InputError("a top-up must be more than 0", field="amount")
    if value == 0 or abs(value) > Decimal("1e12"):
        raise InputError("the amount must be non-zero and below 10^12", field="amount")
    reference = (reference or "").strip()
    if not 3 <= len(reference) <= 80:
        raise InputError("give the payment reference (3-80 characters): deposit slip, EFT "
                         "reference or note", field="reference")
    now = reg.clock().replace(microsecond=0)
    with reg.db.begin() as conn:
        row = conn.execute(reg.db.locked(select(vendors.c.id, vendors.c.float_balance)
                                         .where(vendors.c.name == vendor))).first()
        if row is None:
            raise UnknownRecord(f"vendor {vendor!r} does not exist", field="vendor")
        balance = Decimal(row.float_balance) + value
        if balance < 0:
            raise InputError("the float cannot go below zero", field="amount")
        conn.execute(update(vendors).where(vendors.c.id == row.id)
                     .values(float_balance=vendors.c.float_balance + value))
        conn.execute(insert(float_movements).values(
            vendor_id=row.id, kind=kind, amount=value, balance_after=balance,
            reference=reference, actor=reg.actor, created_at=now))
        reg._audit(conn, f"vendor.{kind}", vendor, amount=money(value), reference=reference,
                   balance=money(balance))
    return balance


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
