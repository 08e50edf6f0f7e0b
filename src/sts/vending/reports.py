"""What a utility reads every morning: sales per day / vendor / supply group, vendor
reconciliation (float movements against sales), meters due a key change.

Sales and reversals are both counted: a reversal carries negative amounts, so the totals are
what was really sold.  Money is summed in SQL in the column's own type (exact on both
backends).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select

from sts.errors import InputError
from sts.vending.money_text import MoneyStyle
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
    Money,
    customers,
    meters,
    supply_groups,
    transactions,
    vending_keys,
    vendors,
)
from sts.vending.storage.tables_office import float_movements
from sts.vending.tariff import money

GROUPS = ("day", "vendor", "sgc")
MONEY_COLUMNS = ("amount", "vat", "charges", "debt")


def _sum(col: Any, label: str) -> Any:
    return func.coalesce(func.sum(col, type_=Money()), 0, type_=Money()).label(label)


def sales(db: Database, start: datetime, end: datetime, by: str, *,
          vendor_id: int | None = None) -> dict[str, Any]:
    """Sales of [start, end) grouped by day, vendor or SGC, with totals (of one vendor's
    sales when `vendor_id` is given: the caller's scope)."""
    if by not in GROUPS:
        raise InputError(f"group by one of {', '.join(GROUPS)}", field="by")
    if end <= start:
        raise InputError("the end must be after the start", field="end")
    t = transactions.c
    key: Any
    stmt = select(
        func.sum(case((t.kind == "sale", 1), else_=0)).label("sales"),
        func.sum(case((t.kind == "reversal", 1), else_=0)).label("reversals"),
        _sum(t.amount, "amount"), _sum(t.vat, "vat"), _sum(t.charges, "charges"),
        _sum(t.debt, "debt"), _sum(t.units, "units"),
    ).where(t.kind.in_(("sale", "reversal")), t.created_at >= start, t.created_at < end)
    if vendor_id is not None:
        stmt = stmt.where(t.vendor_id == vendor_id)
    if by == "day":
        key = func.date(t.created_at)
    elif by == "vendor":
        key = func.coalesce(vendors.c.name, "(none)")
        stmt = stmt.outerjoin(vendors, vendors.c.id == t.vendor_id)
    else:
        key = supply_groups.c.sgc
        stmt = stmt.join(meters, meters.c.id == t.meter_id).join(
            supply_groups, supply_groups.c.id == meters.c.sgc_id)
    stmt = stmt.add_columns(key.label("key")).group_by(key).order_by(key)
    with db.read() as conn:
        rows = conn.execute(stmt).all()
    out = []
    totals: dict[str, Any] = {"sales": 0, "reversals": 0, "units": Decimal(0)}
    totals |= {c: Decimal(0) for c in MONEY_COLUMNS}
    for r in rows:
        line: dict[str, Any] = {"key": str(r.key), "sales": int(r.sales or 0),
                                "reversals": int(r.reversals or 0)}
        for c in MONEY_COLUMNS:
            value = Decimal(getattr(r, c))
            totals[c] += value
            line[c] = money(value)
        units = Decimal(r.units)
        totals["units"] += units
        line["units"] = str(units.quantize(Decimal("0.1")))
        totals["sales"] += line["sales"]
        totals["reversals"] += line["reversals"]
        out.append(line)
    total_line = {"key": "Total", "sales": totals["sales"], "reversals": totals["reversals"],
                  "units": str(totals["units"].quantize(Decimal("0.1")))}
    total_line |= {c: money(totals[c]) for c in MONEY_COLUMNS}
    return {"by": by, "start": start.isoformat(sep=" "), "end": end.isoformat(sep=" "),
            "rows": out, "total": total_line}


def reconciliation(db: Database, start: datetime, end: datetime, *,
                   vendor_id: int | None = None) -> dict[str, Any]:
    """Per vendor: opening float + top-ups - sales + reversals = closing, and the difference
    against the float held now (walked back from today), which must be zero."""
    t, f = transactions.c, float_movements.c
    with db.read() as conn:
        vq = select(vendors.c.id, vendors.c.name, vendors.c.float_balance)
        if vendor_id is not None:
            vq = vq.where(vendors.c.id == vendor_id)
        vend = conn.execute(vq.order_by(vendors.c.name)).all()

        def sums(since: datetime, until: datetime | None) -> tuple[dict[int, Any], dict[int, Any]]:
            sw = [t.created_at >= since, t.kind.in_(("sale", "reversal")),
                  t.vendor_id.is_not(None)]
            fw = [f.created_at >= since]
            if until is not None:
                sw.append(t.created_at < until)
                fw.append(f.created_at < until)
            s = {r.vendor_id: r for r in conn.execute(
                select(t.vendor_id,
                       _sum(case((t.kind == "sale", t.amount), else_=0), "sales"),
                       _sum(case((t.kind == "reversal", -t.amount), else_=0), "reversals"))
                .where(*sw).group_by(t.vendor_id))}
            m = {r.vendor_id: r for r in conn.execute(
                select(f.vendor_id, _sum(f.amount, "moved")).where(*fw).group_by(f.vendor_id))}
            return s, m

        since_start = sums(start, None)
        period = sums(start, end)
    rows = []
    zero = Decimal(0)
    for v in vend:
        s_all, m_all = since_start[0].get(v.id), since_start[1].get(v.id)
        net_since = ((Decimal(m_all.moved) if m_all else zero)
                     - (Decimal(s_all.sales) if s_all else zero)
                     + (Decimal(s_all.reversals) if s_all else zero))
        opening = Decimal(v.float_balance) - net_since
        s, m = period[0].get(v.id), period[1].get(v.id)
        top = Decimal(m.moved) if m else zero
        sold = Decimal(s.sales) if s else zero
        back = Decimal(s.reversals) if s else zero
        closing = opening + top - sold + back
        rows.append({"vendor": v.name, "opening": money(opening), "top_ups": money(top),
                     "sales": money(sold), "reversals": money(back), "closing": money(closing),
                     "float_now": money(Decimal(v.float_balance))})
    return {"start": start.isoformat(sep=" "), "end": end.isoformat(sep=" "), "rows": rows}


def key_change_due(db: Database) -> list[dict[str, Any]]:
    """Meters whose key is not their supply group's current key: the next sale carries KCTs."""
    m, sg = meters.c, supply_groups.c
    with db.read() as conn:
        rows = conn.execute(
            select(m.pan, sg.sgc, vending_keys.c.krn.label("krn"), m.ti, m.status,
                   customers.c.name.label("customer"))
            .join(supply_groups, sg.id == m.sgc_id)
            .join(vending_keys, vending_keys.c.id == m.key_id)
            .outerjoin(customers, customers.c.id == m.customer_id)
            .where(sg.current_key_id.is_not(None), m.key_id != sg.current_key_id)
            .order_by(sg.sgc, m.pan)).all()
        current = {r.sgc: r.krn for r in conn.execute(
            select(sg.sgc, vending_keys.c.krn).join(vending_keys,
                                                     vending_keys.c.id == sg.current_key_id))}
    return [{"meter": r.pan, "sgc": r.sgc, "krn": r.krn, "to_krn": current.get(r.sgc),
             "ti": r.ti, "status": r.status, "customer": r.customer or ""} for r in rows]


# the money columns of each table, whose CSV headers name the currency
SALES_MONEY = ("amount", "vat", "charges", "debt")
RECON_MONEY = ("opening", "top_ups", "sales", "reversals", "closing", "float_now")
STATEMENT_MONEY = ("amount", "balance")


def to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None, *,
           money: MoneyStyle | None = None, money_columns: Iterable[str] = ()) -> str:
    """A table as CSV text (header first); cells that a spreadsheet would run as formulas are
    prefixed with an apostrophe.  Money cells stay exact decimals ("1024800.00"); their
    header names the currency ("amount (ZAR)") when `money` is given."""
    buf = io.StringIO()
    cols = columns or (list(rows[0]) if rows else [])
    w = csv.writer(buf, lineterminator="\r\n")
    priced = set(money_columns)
    w.writerow([money.header(c) if money is not None and c in priced else c for c in cols])
    for r in rows:
        w.writerow([_cell(r.get(c, "")) for c in cols])
    return buf.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not _number(text)):
        return "'" + text
    return text


def _number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


def vendor_day(db: Database, vendor_id: int, start: datetime, end: datetime,
               *, recent: int = 8) -> dict[str, Any]:
    """A till's view: the vendor's float now, takings of [start, end), the latest sales."""
    t = transactions.c
    with db.read() as conn:
        v = conn.execute(select(vendors.c.name, vendors.c.float_balance)
                         .where(vendors.c.id == vendor_id)).first()
        if v is None:
            raise InputError("the operator's vendor does not exist", field="vendor")
        s = conn.execute(
            select(func.sum(case((t.kind == "sale", 1), else_=0)).label("sales"),
                   func.sum(case((t.kind == "reversal", 1), else_=0)).label("reversals"),
                   _sum(t.amount, "amount"))
            .where(t.vendor_id == vendor_id, t.kind.in_(("sale", "reversal")),
                   t.created_at >= start, t.created_at < end)).one()
        latest = conn.execute(
            select(t.seq, t.request_id, t.amount, t.status, t.created_at, meters.c.pan)
            .join(meters, meters.c.id == t.meter_id)
            .where(t.vendor_id == vendor_id, t.kind == "sale")
            .order_by(t.seq.desc()).limit(recent)).all()
    return {"vendor": v.name, "float": money(Decimal(v.float_balance)),
            "sales": int(s.sales or 0), "reversals": int(s.reversals or 0),
            "takings": money(Decimal(s.amount)),
            "latest": [{"receipt_no": f"{r.seq:010d}", "purchase_id": r.request_id,
                        "amount": money(Decimal(r.amount)), "status": r.status,
                        "at": r.created_at.strftime("%H:%M"), "meter": r.pan} for r in latest]}
