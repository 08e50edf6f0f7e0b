"""Cashiers' shifts and the cash-up, and the counter's amount presets, on SQLite and PostgreSQL:
the sales of a shift by tender, reversals refunded from the drawer, expected against counted
cash, the supervisor's list tying to the vendor's sales, and the state rules."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from sts.errors import InputError, NotAuthorised, ShiftState, UnknownRecord
from sts.vending import reports
from sts.vending.access import operators
from sts.vending.registry import operators as operator_admin
from sts.vending.storage.tables import operators as op_rows
from sts.vending.storage.tables import transactions
from sts.vending.usecases import presets, shifts

PASSWORD = "a long enough secret"


def _caller(demo: Any, username: str, role: str, vendor: str | None = "Demo Vendor") -> Any:
    """A signed-in operator's service caller (built from its row: no argon2 sign-in)."""
    operator_admin.add_operator(demo.registry, username, role, PASSWORD, vendor=vendor)
    with demo.service.db.read() as conn:
        row = conn.execute(sa.select(op_rows.c.id, op_rows.c.vendor_id)
                           .where(op_rows.c.username == username)).one()
    op = operators.Operator(row.id, username, "", role, row.vendor_id, vendor)
    return operators.caller(demo.service.db, op, now=demo.clock())


def _sell(demo: Any, caller: Any, amount: str, tender: str = "cash", wait: int = 30) -> str:
    pid = str(uuid.uuid4())
    demo.service.purchase(pid, {"meter": demo.meters[0], "amount": amount,
                                "pay_type": tender}, caller)
    demo.clock.advance(seconds=wait)
    return pid


@pytest.mark.slow
def test_a_shift_cashes_up_by_tender_and_ties_to_the_vendor(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    till = _caller(demo, "till1", "vendor")
    boss = _caller(demo, "boss1", "supervisor")
    start = clock().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    assert demo.buy(amount="40").status_code == 201  # an API sale: no operator, no shift

    opened = shifts.open_shift(db, till, "150.00", now=clock())
    assert opened["open"] and opened["opening_cash"] == "150.00"
    assert opened["opened_by"] == "cashier" and opened["expected_cash"] == "150.00"
    with pytest.raises(ShiftState):
        shifts.open_shift(db, till, "0", now=clock())
    clock.advance(seconds=30)
    first = _sell(demo, till, "100")
    _sell(demo, till, "50")
    _sell(demo, till, "30", tender="card")
    _sell(demo, till, "20", tender="EcoCash")  # a pay type that is no tender: "other"
    demo.service.reverse(first, "customer paid twice", boss)
    clock.advance(seconds=30)

    with db.read() as conn:
        tenders = [r.tender for r in conn.execute(
            sa.select(transactions.c.tender).where(transactions.c.kind == "sale")
            .order_by(transactions.c.seq))]
    assert tenders == [None, "cash", "cash", "card", None]

    now = shifts.current(db, till)
    assert now is not None and now["sales"] == 4 and now["reversals"] == 1
    closed = shifts.close_shift(db, till, "199.50", "drawer short 50c", now=clock())
    assert not closed["open"] and closed["closed_at"] is not None
    assert (closed["amount"], closed["refunded"], closed["net"]) == ("200.00", "100.00",
                                                                      "100.00")
    by = {t["tender"]: t for t in closed["by_tender"]}
    assert by["cash"] | {} == by["cash"] and by["cash"]["amount"] == "150.00"
    assert by["cash"]["refunded"] == "100.00" and by["card"]["amount"] == "30.00"
    assert by["other"]["amount"] == "20.00"
    # 150 in the drawer + 150 cash sold - 100 refunded in cash
    assert closed["expected_cash"] == "200.00" and closed["counted_cash"] == "199.50"
    assert closed["difference"] == "-0.50" and closed["note"] == "drawer short 50c"
    assert shifts.current(db, till) is None
    with pytest.raises(ShiftState):
        shifts.close_shift(db, till, "0", now=clock())

    # a sale after the close opens the next shift implicitly, with no opening cash
    clock.advance(seconds=30)
    sid = shifts.ensure_open(db, till, now=clock())
    assert shifts.ensure_open(db, till, now=clock()) == sid
    _sell(demo, till, "10")
    again = shifts.shift(db, till, sid)
    assert again["opened_by"] == "sale" and again["opening_cash"] == "0.00"
    assert again["sales"] == 1 and again["expected_cash"] == "10.00"

    end = clock().replace(tzinfo=None) + (clock().replace(tzinfo=None) - start)
    rep = shifts.report(db, boss, start, end)
    assert [s["id"] for s in rep["shifts"]] == [closed["id"], sid]
    [tie] = rep["vendors"]
    assert tie["vendor"] == "Demo Vendor" and tie["sales"] == 6
    assert (tie["amount"], tie["in_shifts"], tie["outside"]) == ("250.00", "210.00", "40.00")
    assert tie["difference"] == "0.00"
    # the float reconciliation's sales are the same figure
    [rec] = reports.reconciliation(db, start, end, vendor_id=till.vendor_id)["rows"]
    assert rec["sales"] == tie["amount"]

    # who may read what
    other = _caller(demo, "till2", "vendor")
    with pytest.raises(UnknownRecord):
        shifts.shift(db, other, sid)
    assert shifts.shift(db, boss, sid)["id"] == sid
    with pytest.raises(NotAuthorised):
        shifts.report(db, till, start, end)
    engineer = _caller(demo, "eng1", "engineer", vendor=None)
    with pytest.raises(NotAuthorised):
        shifts.open_shift(db, engineer, "0", now=clock())


def test_shifts_of_one_second_never_overlap(demo: Any) -> None:
    """Close, open and sell in one second: the second is the new shift's; no sale is counted
    twice or lost."""
    db, clock = demo.service.db, demo.clock
    till = _caller(demo, "till5", "vendor")
    first = shifts.ensure_open(db, till, now=clock())
    _sell(demo, till, "10", wait=1)
    closed = shifts.close_shift(db, till, "10", now=clock())
    assert (closed["id"], closed["amount"], closed["difference"]) == (first, "10.00", "0.00")
    assert closed["sales"] == 1
    second = shifts.ensure_open(db, till, now=clock())  # in the second the first closed
    _sell(demo, till, "20", wait=0)
    assert shifts.shift(db, till, first)["amount"] == "10.00"
    assert shifts.shift(db, till, second)["amount"] == "20.00"


def test_a_sale_counts_in_the_shift_it_was_made_in(demo: Any) -> None:
    """Sell, close and open again in one second: the time rule would give the sale to the new
    shift (it owns that second); the sale records its shift, so it stays in the first."""
    db, clock = demo.service.db, demo.clock
    till = _caller(demo, "till6", "vendor")
    first = shifts.ensure_open(db, till, now=clock())
    clock.advance(seconds=5)
    pid = _sell(demo, till, "10", wait=0)
    shifts.close_shift(db, till, "10", now=clock())
    second = shifts.ensure_open(db, till, now=clock())
    with db.read() as conn:
        recorded = conn.execute(sa.select(transactions.c.shift_id)
                                .where(transactions.c.request_id == pid)).scalar()
    assert recorded == first
    assert (shifts.shift(db, till, first)["sales"], shifts.shift(db, till, second)["sales"]) \
        == (1, 0)
    assert shifts.shift(db, till, first)["expected_cash"] == "10.00"
    # an API sale by a machine key belongs to no shift
    assert demo.buy(amount="40").status_code == 201
    with db.read() as conn:
        last = conn.execute(sa.select(transactions.c.shift_id)
                            .order_by(transactions.c.seq.desc()).limit(1)).scalar()
    assert last is None


def test_shift_input_rules(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    till = _caller(demo, "till3", "vendor")
    for bad in ("-5", "abc", "1.005"):
        with pytest.raises(InputError) as err:
            shifts.open_shift(db, till, bad, now=clock())
        assert err.value.field == "opening_cash"
    shifts.open_shift(db, till, "", now=clock())  # no opening cash: zero
    with pytest.raises(InputError) as err:
        shifts.close_shift(db, till, "10", "x" * 201, now=clock())
    assert err.value.field == "note"
    assert shifts.current(db, till) is not None  # a refused close leaves the shift open


def test_presets_per_utility(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    admin = _caller(demo, "adm1", "admin", vendor=None)
    till = _caller(demo, "till4", "vendor")
    assert presets.for_meter(db, demo.meters[0]) == presets.DEFAULT
    saved = presets.set_presets(db, admin, "Demo Utility", "200; 50 20  100 50", actor="t",
                                now=clock())
    assert saved == ("20.00", "50.00", "100.00", "200.00")
    presets.set_presets(db, admin, "Demo Utility", "25 75", actor="t", now=clock())
    assert presets.for_meter(db, demo.meters[0]) == ("25.00", "75.00")
    assert [u["presets"] for u in presets.every_utility(db)] == [["25.00", "75.00"]]
    for bad in ("", "10 abc", "0", " ".join(str(i) for i in range(1, 10))):
        with pytest.raises(InputError) as err:
            presets.set_presets(db, admin, "Demo Utility", bad, actor="t", now=clock())
        assert err.value.field == "presets"
    with pytest.raises(UnknownRecord):
        presets.set_presets(db, admin, "Nowhere", "10", actor="t", now=clock())
    with pytest.raises(NotAuthorised):
        presets.set_presets(db, till, "Demo Utility", "10", actor="t", now=clock())
    assert Decimal(presets.for_meter(db, "600727000000000000")[0]) == 20  # unknown: default
