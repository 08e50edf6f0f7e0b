"""The tariff calculation alone (no database)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.errors import AmountTooHigh, AmountTooLow, InputError
from sts.vending.tariff import Block, Quote, Tariff, parse_amount, quote

Z = D(0)


def q(t: Tariff, amount: str, **kw: D) -> Quote:
    args = {"month_units": Z, "fixed_paid": Z, "free_issued": Z, "debt_balance": Z} | kw
    return quote(t, D(amount), **args)


def test_flat_with_vat() -> None:
    t = Tariff("flat", (Block(None, D("2.50")),), vat_rate=D("0.15"))
    r = q(t, "100")
    assert r.units == D("34.7") and r.vat == D("13.04") and r.energy_net == D("86.96")


def test_step_blocks_continue_across_the_month() -> None:
    t = Tariff("step", (Block(D("50"), D("1")), Block(D("100"), D("2")), Block(None, D("3"))))
    assert q(t, "60").units == D("55.0")
    assert q(t, "60", month_units=D("40")).units == D("35.0")  # 10 @1 + 25 @2
    assert q(t, "30", month_units=D("120")).units == D("10.0")


def test_fixed_charge_debt_and_free_units() -> None:
    t = Tariff("x", (Block(None, D("1")),), fixed_monthly=D("10"), debt_share=D("0.5"),
               free_units=D("20"))
    r = q(t, "50", debt_balance=D("100"))
    assert (r.fixed_charge, r.debt, r.units, r.free_units) == (D("10"), D("20.00"), D("20.0"),
                                                               D("20"))
    r2 = q(t, "50", fixed_paid=D("10"), free_issued=D("20"), debt_balance=D("5"))
    assert (r2.fixed_charge, r2.debt, r2.units, r2.free_units) == (Z, D("5"), D("45.0"), Z)


def test_limits_and_parsing() -> None:
    t = Tariff("x", (Block(None, D("1")),), min_amount=D("5"), max_amount=D("100"))
    with pytest.raises(AmountTooLow):
        q(t, "4.99")
    with pytest.raises(AmountTooHigh):
        q(t, "100.01")
    t2 = Tariff("y", (Block(None, D("1")),), fixed_monthly=D("10"))
    with pytest.raises(AmountTooLow):
        q(t2, "10")  # pays the charge only: no units
    assert parse_amount("10.5") == D("10.50")
    for bad in ("1e3x", "10.001", "NaN", "", 1.5, True):
        with pytest.raises(InputError):
            parse_amount(bad)
    with pytest.raises(AmountTooLow):
        parse_amount("0.00")
    with pytest.raises(InputError):
        parse_amount("-1")


def test_tariff_validation() -> None:
    with pytest.raises(InputError):
        Tariff("bad", (Block(D("10"), D("1")),))
    with pytest.raises(InputError):
        Tariff("bad", (Block(D("10"), D("1")), Block(D("5"), D("2")), Block(None, D("3"))))
    with pytest.raises(InputError):
        Tariff("bad", (Block(None, D("0")),))


@settings(max_examples=300)
@given(amount=st.decimals(min_value=D("1"), max_value=D("5000"), places=2),
       used=st.decimals(min_value=D("0"), max_value=D("400"), places=1),
       vat=st.sampled_from([D("0"), D("0.15"), D("0.16")]))
def test_breakdown_adds_up_to_the_token_units(amount: D, used: D, vat: D) -> None:
    """Every step shows whole tenths and the steps add up to exactly the units the token
    carries (the one rounding rule: tenths, rounded down)."""
    t = Tariff("step", (Block(D("50"), D("1.23")), Block(D("350"), D("2.07")),
                        Block(None, D("3.41"))), vat_rate=vat)
    try:
        got = quote(t, amount, month_units=used, fixed_paid=D(0), free_issued=D(0),
                    debt_balance=D(0))
    except AmountTooLow:
        return
    assert sum((s.units for s in got.steps), D(0)) == got.units
    assert all(s.units == s.units.quantize(D("0.1")) for s in got.steps)
