"""Cashiers' shifts and their cash-up.

A cashier (any operator who may sell, bound to a vendor) opens a shift with the cash in the
drawer, sells within it and closes it with the cash counted.  The rules:

- one open shift per operator (a partial unique index backs it against a double click);
- a sale at the counter without an open shift opens one implicitly, with no opening cash
  (`ensure_open`, called by the point of sale before the sale): a sale is never refused for
  want of a shift, and the supervisor's list shows the shift as opened by a sale;
- a sale belongs to the shift its cashier had open when it was made: the sale records it
  (`transactions.shift_id`, looked up in the sale's own insert: the open shift of the key's
  operator for the sale's vendor), and the cash-up counts it there by id, so two shifts that
  touch in one second can never both claim it.  A sale of no shift (made before migration
  0024) keeps the time rule: the sale's operator (its API-key row's operator), its vendor,
  and opened_at <= created_at <= closed_at.  Times are whole seconds, as the sales': when
  the operator's next shift opens in the second the last one closed, that second is the new
  shift's (the closed one ends a second earlier), so shifts never overlap.  Sales made
  through the API by machines (no operator) belong to no shift and are shown apart;
- a reversal counts in the shift its sale's cashier has open when the reversal is made (the
  refund leaves that drawer), in the tender of its sale;
- expected cash = opening cash + cash sales - cash refunds; the difference is counted - expected.

Times are the utility's wall time, as the sales' own `created_at`.  The cash-up is computed
from the sales every time it is shown, so a sale that committed while the shift was closing is
never lost from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from sts.errors import InputError, NotAuthorised, ShiftState, UnknownRecord
from sts.vending import audit
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.clock import local, wall
from sts.vending.i18n import N_
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
    Money,
    api_keys,
    operators,
    supply_groups,
    transactions,
    utilities,
    vendor_sgcs,
    vendors,
)
from sts.vending.storage.tables_counter import shifts
from sts.vending.tariff import CENT, money, parse_decimal
from sts.vending.tenders import LABELS, TENDERS

ZERO = Decimal(0)
NOTE_LONGEST = 200


@dataclass(frozen=True)
class Seller:
    """The operator behind a caller, and the vendor their sales are for."""

    operator_id: int
    vendor_id: int
    username: str


def _seller(conn: Any, caller: Caller) -> Seller:
    caller.require("shift")
    row = conn.execute(select(api_keys.c.operator_id, operators.c.username)
                       .join(operators, operators.c.id == api_keys.c.operator_id)
                       .where(api_keys.c.id == caller.key_id)).first()
    if row is None:
        raise NotAuthorised("shifts are for operators who sign in to the point of sale",
                            field="authorization")
    if caller.vendor_id is None:
        raise NotAuthorised("only an operator of a vendor works shifts", field="authorization")
    return Seller(int(row.operator_id), caller.vendor_id, str(row.username))


def wall_now(conn: Any, vendor_id: int | None, now_utc: datetime) -> datetime:
    """Now on the wall clock of the vendor's utility (of its first supply group; else the first
    utility's): the time base of the sales."""
    zone = conn.execute(select(utilities.c.time_zone)
                        .join(supply_groups, supply_groups.c.utility_id == utilities.c.id)
                        .join(vendor_sgcs, vendor_sgcs.c.sgc_id == supply_groups.c.id)
                        .where(vendor_sgcs.c.vendor_id == vendor_id)
                        .order_by(vendor_sgcs.c.sgc_id).limit(1)).scalar()
    if zone is None:
        zone = conn.execute(select(utilities.c.time_zone).order_by(utilities.c.id)
                            .limit(1)).scalar()
    return wall(local(now_utc.replace(tzinfo=None), zone or "UTC"))


def cash(value: object, field: str) -> Decimal:
    """An amount of cash counted in a drawer: zero or more, in cents."""
    text = value.strip() if isinstance(value, str) else value
    amount = parse_decimal(text if text not in (None, "") else "0", field)
    assert amount is not None
    if amount != amount.quantize(CENT):
        raise InputError(N_("{name} is money: at most two decimal places"), field=field,
                         name=field.replace("_", " "))
    return amount


def _open_row(conn: Any, operator_id: int) -> Any:
    s = shifts.c
    return conn.execute(select(shifts).where(s.operator_id == operator_id,
                                             s.closed_at.is_(None))).first()


def _open(db: Database, conn: Any, who: Seller, opening: Decimal, by: str,
          now_utc: datetime) -> int:
    at = wall_now(conn, who.vendor_id, now_utc)
    # a shift that closed in this very second gives the second up to this one
    conn.execute(update(shifts).where(shifts.c.operator_id == who.operator_id,
                                      shifts.c.closed_at >= at)
                 .values(closed_at=at - timedelta(seconds=1)))
    sid = conn.execute(insert(shifts).values(
        operator_id=who.operator_id, vendor_id=who.vendor_id, opened_at=at,
        opening_cash=opening, opened_by=by, note="").returning(shifts.c.id)).scalar_one()
    audit.append(db, conn, at=at, actor=f"web:{who.username}", action="shift.open",
                 subject=f"shift:{sid}", details={"opening_cash": money(opening), "by": by})
    return int(sid)


def current(db: Database, caller: Caller) -> dict[str, Any] | None:
    """The caller's open shift with its cash-up so far, or None."""
    with db.read() as conn:
        who = _seller(conn, caller)
        row = _open_row(conn, who.operator_id)
        return None if row is None else _cash_up(conn, row)


def open_shift(db: Database, caller: Caller, opening_cash: object, *,
               now: datetime) -> dict[str, Any]:
    """Open the caller's shift with the cash in the drawer; refused when one is open."""
    opening = cash(opening_cash, "opening_cash")
    already = ShiftState(N_("your shift is already open: close it before opening another"),
                         field="opening_cash")
    try:
        with db.begin() as conn:
            who = _seller(conn, caller)
            if _open_row(conn, who.operator_id) is not None:
                raise already
            sid = _open(db, conn, who, opening, "cashier", now)
    except IntegrityError:  # a twin opened it first (the one-open-shift index)
        raise already from None
    return shift(db, caller, sid)


def ensure_open(db: Database, caller: Caller, *, now: datetime) -> int:
    """The caller's open shift, opened (no opening cash, "opened by a sale") when none is: what
    the point of sale calls before a sale.  A twin that opened one first is taken."""
    try:
        with db.begin() as conn:
            who = _seller(conn, caller)
            row = _open_row(conn, who.operator_id)
            if row is not None:
                return int(row.id)
            return _open(db, conn, who, ZERO, "sale", now)
    except IntegrityError:  # a twin opened it first (the one-open-shift index)
        with db.read() as conn:
            row = _open_row(conn, _seller(conn, caller).operator_id)
            if row is None:
                raise
            return int(row.id)


def close_shift(db: Database, caller: Caller, counted_cash: object, note: object = "", *,
                now: datetime) -> dict[str, Any]:
    """Close the caller's open shift with the cash counted; returns its cash-up."""
    counted = cash(counted_cash, "counted_cash")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note.strip()) > NOTE_LONGEST:
        raise InputError(N_("the note is text of at most {longest} characters"),
                         field="note", longest=NOTE_LONGEST)
    with db.begin() as conn:
        who = _seller(conn, caller)
        row = conn.execute(db.locked(select(shifts).where(
            shifts.c.operator_id == who.operator_id, shifts.c.closed_at.is_(None)))).first()
        if row is None:
            raise ShiftState(N_("you have no open shift to close"), field="counted_cash")
        at = max(wall_now(conn, who.vendor_id, now), row.opened_at)
        conn.execute(update(shifts).where(shifts.c.id == row.id).values(
            closed_at=at, counted_cash=counted, note=note.strip()))
        audit.append(db, conn, at=at, actor=f"web:{who.username}", action="shift.close",
                     subject=f"shift:{row.id}", details={"counted_cash": money(counted)})
        sid = int(row.id)
    return shift(db, caller, sid)


def shift(db: Database, caller: Caller, shift_id: int) -> dict[str, Any]:
    """One shift's cash-up: the cashier's own, or any in a supervisor's vendor scope."""
    with db.read() as conn:
        row = conn.execute(select(shifts).where(shifts.c.id == shift_id)).first()
        if row is None or not _may_read(conn, caller, row):
            raise UnknownRecord(f"no shift {shift_id}", field="shift")
        return _cash_up(conn, row)


def _may_read(conn: Any, caller: Caller, row: Any) -> bool:
    if caller.may("shifts"):
        return caller.sees(row.vendor_id)
    if not caller.may("shift"):
        return False
    mine = conn.execute(select(api_keys.c.operator_id)
                        .where(api_keys.c.id == caller.key_id)).scalar()
    return mine is not None and mine == row.operator_id


# --- the figures ---------------------------------------------------------------------------


def _sums(conn: Any, shift_ids: list[int], start: datetime | None = None,
          end: datetime | None = None) -> dict[int, dict[str, Any]]:
    """{shift id: {"sales": {tender: (count, amount)}, "reversals": {...}}} for the shifts
    named, within [start, end) when given (the period of a report).

    Per shift, two indexed reads: the sales recorded in it (`ix_transactions_shift_id`) with
    the cashier's older sales of no shift by key and time (`ix_transactions_api_key_id`),
    and the reversals (few: `ix_transactions_reverses`) of
    the cashier's sales made within the shift.  The keys are read first, so no plan scans."""
    t = transactions.c
    out: dict[int, dict[str, Any]] = {i: {"sales": {}, "reversals": {}} for i in shift_ids}
    if not shift_ids:
        return out
    rows = conn.execute(select(shifts).where(shifts.c.id.in_(shift_ids))).all()
    keys: dict[int, list[int]] = {}
    for k in conn.execute(select(api_keys.c.id, api_keys.c.operator_id).where(
            api_keys.c.operator_id.in_({r.operator_id for r in rows}))):
        keys.setdefault(k.operator_id, []).append(int(k.id))
    sold = transactions.alias("sold")
    total = func.coalesce(func.sum(t.amount, type_=Money()), 0, type_=Money())
    for row in rows:
        mine = keys.get(row.operator_id, [])
        if not mine:
            continue
        period = [t.created_at >= start] if start is not None else []
        if end is not None:
            period.append(t.created_at < end)
        window = [t.created_at >= row.opened_at]
        if row.closed_at is not None:
            window.append(t.created_at <= row.closed_at)
        # the sales recorded in this shift (by id), and the older ones of no shift that its
        # cashier made within its times
        sales = (select(t.tender, func.count().label("n"), total.label("amount"))
                 .where(t.kind == "sale", or_(
                     t.shift_id == row.id,
                     and_(t.shift_id.is_(None), t.api_key_id.in_(mine),
                          t.vendor_id == row.vendor_id, *window)), *period)
                 .group_by(t.tender))
        refunds = (select(sold.c.tender, func.count().label("n"),
                          func.coalesce(func.sum(-t.amount, type_=Money()), 0,
                                        type_=Money()).label("amount"))
                   .select_from(transactions)
                   .join(sold, sold.c.seq == t.reverses)
                   .where(t.reverses.is_not(None), t.kind == "reversal", *window, *period,
                          sold.c.api_key_id.in_(mine), sold.c.vendor_id == row.vendor_id,
                          sold.c.kind == "sale")
                   .group_by(sold.c.tender))
        for what, stmt in (("sales", sales), ("reversals", refunds)):
            for r in conn.execute(stmt):
                out[row.id][what][r.tender] = (int(r.n), Decimal(r.amount))
    return out


def _figures(row: Any, sums: dict[str, Any]) -> dict[str, Any]:
    by_tender = []
    for tender in (*TENDERS, None):
        n, sold = sums["sales"].get(tender, (0, ZERO))
        rn, back = sums["reversals"].get(tender, (0, ZERO))
        if n or rn or tender == "cash":
            by_tender.append({"tender": tender or "other", "label": LABELS[tender],
                              "sales": n, "amount": money(sold), "reversals": rn,
                              "refunded": money(back), "net": money(sold - back)})
    count = sum(n for n, _ in sums["sales"].values())
    total = sum((a for _, a in sums["sales"].values()), ZERO)
    rcount = sum(n for n, _ in sums["reversals"].values())
    refunded = sum((a for _, a in sums["reversals"].values()), ZERO)
    cash_in = sums["sales"].get("cash", (0, ZERO))[1] - sums["reversals"].get("cash",
                                                                              (0, ZERO))[1]
    expected = Decimal(row.opening_cash) + cash_in
    counted = None if row.counted_cash is None else Decimal(row.counted_cash)
    return {"sales": count, "amount": money(total), "reversals": rcount,
            "refunded": money(refunded), "net": money(total - refunded),
            "by_tender": by_tender, "expected_cash": money(expected),
            "counted_cash": None if counted is None else money(counted),
            "difference": None if counted is None else money(counted - expected)}


def _describe(row: Any, cashier: str, name: str, vendor: str) -> dict[str, Any]:
    return {"id": int(row.id), "cashier": cashier, "cashier_name": name, "vendor": vendor,
            "opened_at": row.opened_at.isoformat(sep=" ", timespec="minutes"),
            "opened_by": row.opened_by, "opening_cash": money(Decimal(row.opening_cash)),
            "closed_at": (row.closed_at.isoformat(sep=" ", timespec="minutes")
                          if row.closed_at else None),
            "open": row.closed_at is None, "note": row.note}


def _names(conn: Any, row: Any) -> tuple[str, str, str]:
    r = conn.execute(select(operators.c.username, operators.c.name, vendors.c.name.label("v"))
                     .select_from(operators).join(vendors, vendors.c.id == row.vendor_id)
                     .where(operators.c.id == row.operator_id)).one()
    return str(r.username), str(r.name or ""), str(r.v)


def _cash_up(conn: Any, row: Any) -> dict[str, Any]:
    return _describe(row, *_names(conn, row)) | _figures(row, _sums(conn, [int(row.id)])[row.id])


def report(db: Database, caller: Caller, start: datetime, end: datetime) -> dict[str, Any]:
    """The supervisor's list: every shift of [start, end) in the caller's vendor scope (open or
    closed, by cashier, with its cash-up), and per vendor the tie with the float: the vendor's
    sales of the period = the sales within its shifts + the sales outside any shift."""
    caller.require("shifts")
    if end <= start:
        raise InputError("the end must be after the start", field="end")
    s, t, k = shifts.c, transactions.c, api_keys.c
    scope = vendor_filter(caller.vendor_scope())
    with db.read() as conn:
        q = (select(shifts, operators.c.username, operators.c.name.label("cashier_name"),
                    vendors.c.name.label("vendor"))
             .join(operators, operators.c.id == s.operator_id)
             .join(vendors, vendors.c.id == s.vendor_id)
             .where(s.opened_at < end, or_(s.closed_at.is_(None), s.closed_at > start)))
        if scope is not None:
            q = q.where(s.vendor_id == scope)
        rows = conn.execute(q.order_by(vendors.c.name, s.opened_at, s.id)).all()
        whole = _sums(conn, [int(r.id) for r in rows])
        clipped = _sums(conn, [int(r.id) for r in rows], start, end)
        # per vendor: every sale of the period, and those no shift holds (by id, or for a
        # sale of no shift, by its seller's times)
        covered = or_(t.shift_id.is_not(None), exists().where(
            s.operator_id == k.operator_id, s.vendor_id == t.vendor_id,
            t.created_at >= s.opened_at, or_(s.closed_at.is_(None), t.created_at <= s.closed_at)))
        amount = func.coalesce(func.sum(t.amount, type_=Money()), 0, type_=Money())
        outside = func.coalesce(func.sum(case((covered, 0), else_=t.amount), type_=Money()),
                                0, type_=Money())
        vq = (select(t.vendor_id, vendors.c.name, func.count().label("n"),
                     amount.label("amount"), outside.label("outside"),
                     func.sum(case((covered, 0), else_=1)).label("n_outside"))
              .join(vendors, vendors.c.id == t.vendor_id)
              .outerjoin(api_keys, k.id == t.api_key_id)
              .where(t.kind == "sale", t.created_at >= start, t.created_at < end)
              .group_by(t.vendor_id, vendors.c.name))
        if scope is not None:
            vq = vq.where(t.vendor_id == scope)
        totals = {r.vendor_id: r for r in conn.execute(vq)}
    listed = []
    in_shifts: dict[int, tuple[int, Decimal]] = {}
    for r in rows:
        listed.append(_describe(r, r.username, r.cashier_name or "", r.vendor)
                      | _figures(r, whole[r.id]))
        n, a = in_shifts.get(r.vendor_id, (0, ZERO))
        for cnt, amt in clipped[r.id]["sales"].values():
            n, a = n + cnt, a + amt
        in_shifts[r.vendor_id] = (n, a)
    ties = []
    names = {r.vendor_id: r.vendor for r in rows} | {v: r.name for v, r in totals.items()}
    for vid in sorted(names, key=lambda v: names[v]):
        tot = totals.get(vid)
        sold = Decimal(tot.amount) if tot else ZERO
        out = Decimal(tot.outside) if tot else ZERO
        n_in, a_in = in_shifts.get(vid, (0, ZERO))
        ties.append({"vendor": names[vid], "sales": int(tot.n) if tot else 0,
                     "amount": money(sold), "in_shifts": money(a_in), "sales_in_shifts": n_in,
                     "outside": money(out), "sales_outside": int(tot.n_outside) if tot else 0,
                     "difference": money(sold - a_in - out)})
    return {"start": start.isoformat(sep=" "), "end": end.isoformat(sep=" "),
            "shifts": listed, "vendors": ties}
