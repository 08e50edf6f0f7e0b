"""Consumption, the load-limit procedure, the voltage window, tamper and power, on a fake
clock with the published numbers (30 s, 2 min, 5 trips in 30 min, 30 min, 68-132 % Un)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.meter.meter_helpers import Rig, make_rig


def credited(rig: Rig, units: str = "100", at: str = "2024-02-01T10:00:00") -> None:
    assert rig.meter.enter(rig.credit(units, at=at)).result == "accept"


def relay_events(rig: Rig, start: float) -> list[tuple[float, str]]:
    return [(e.t - start, e.name) for e in rig.meter.take_events()
            if e.name in ("relay_open", "relay_closed", "overload_trip", "overload_reconnect")]


# --- consumption --------------------------------------------------------------------------


def test_load_draws_the_register_and_the_relay_opens_at_zero(rig: Rig) -> None:
    credited(rig, "10")
    assert rig.meter.relay_closed
    rig.meter.set_load(2000)
    rig.advance(3600)
    assert rig.meter.state.memory.registers["electricity"] == Decimal("8")
    rig.meter.take_events()
    t0 = rig.clock.now()
    rig.advance(10 * 3600)  # one long step: runs out after exactly 4 h
    assert rig.meter.state.memory.registers["electricity"] == 0
    opened = [e for e in rig.meter.take_events() if e.name == "relay_open"]
    assert len(opened) == 1 and opened[0].t == pytest.approx(t0 + 4 * 3600, abs=1e-3)
    assert opened[0].data["reasons"] == ["no_credit"]
    assert not rig.meter.relay_closed and rig.text == "0.00 kWh"
    assert rig.meter.state.memory.consumed["electricity"] == Decimal("10")
    credited(rig, "1", at="2024-02-01T11:00:00")  # new credit closes it
    assert rig.meter.relay_closed


def test_one_long_step_equals_many_small_steps() -> None:
    a, b = make_rig(), make_rig()
    for r in (a, b):
        credited(r, "5")
        r.meter.set_load(1234)
    a.advance(7 * 3600)
    for _ in range(7 * 60):
        b.advance(60)
    assert a.meter.state.memory.registers == b.meter.state.memory.registers
    assert a.meter.relay_closed == b.meter.relay_closed is False


def test_water_gas_time_registers_draw_by_their_own_flows(rig: Rig) -> None:
    credited(rig, "10")
    for sub, units in ((1, "2"), (2, "3"), (3, "60")):
        assert rig.meter.enter(rig.credit(units, subclass=sub,
                                          at=f"2024-02-01T10:0{sub}:00")).result == "accept"
    rig.meter.set_flow("water", 0.5)
    rig.meter.set_flow("gas", 1.0)
    rig.meter.set_flow("time", 60)
    rig.advance(1800)
    registers = rig.meter.state.memory.registers
    assert (registers["water"], registers["gas"], registers["time"]) == (
        Decimal("1.75"), Decimal("2.5"), Decimal("30"))
    rig.advance(1800)
    assert registers["time"] == 0  # 60 min at 60 min/h
    rig.advance(3 * 3600)  # water: 2 kl at 0.5 kl/h lasts 4 h
    assert registers["water"] == registers["gas"] == 0
    assert registers["electricity"] == Decimal("10")  # no load, no energy


def test_currency_register_is_drawn_at_the_price_when_units_run_out() -> None:
    rig = make_rig(price_per_unit="0.5")
    credited(rig, "1")
    token = rig.token({"class": 0, "subclass": 4, "issued_at": "2024-02-01T10:05:00",
                       "currency": "2.00000"})[0]
    amount = rig.meter.enter(token).amount
    assert amount is not None
    rig.meter.set_load(1000)
    rig.advance(3600)  # the 1 kWh of units
    assert rig.meter.relay_closed
    rig.advance(3600)  # 1 kWh more at 0.5 per kWh
    money = rig.meter.state.memory.registers["currency_electricity"]
    assert money == Decimal(amount) - Decimal("0.5")
    rig.advance(100 * 3600)
    assert not rig.meter.relay_closed


# --- load limit -----------------------------------------------------------------------------


def limited(limit: int = 1000) -> Rig:
    rig = make_rig()
    credited(rig, "1000")
    assert rig.meter.enter(rig.management(0, mpl_watts=limit,
                                          at="2024-02-01T10:10:00")).result == "accept"
    rig.advance(10)
    rig.meter.take_events()
    return rig


def test_overload_30_s_opens_and_2_min_recloses() -> None:
    rig = limited()
    rig.meter.set_load(1500)
    assert rig.meter.display().alarm
    rig.advance(29.9)
    assert rig.meter.relay_closed
    rig.advance(0.1)
    assert not rig.meter.relay_closed
    assert not rig.meter.display().alarm
    assert rig.text == "OVErLOAd"
    rig.advance(2)
    assert rig.text == "118"  # toggles with the remaining waiting time
    rig.advance(117.9)
    assert not rig.meter.relay_closed
    rig.advance(0.1)
    assert rig.meter.relay_closed  # closes by itself
    assert rig.meter.display().alarm  # still over the limit: the next 30 s run


def test_overload_that_ends_before_30_s_does_not_trip() -> None:
    rig = limited()
    rig.meter.set_load(1500)
    rig.advance(25)
    rig.meter.set_load(900)
    assert not rig.meter.display().alarm
    rig.meter.set_load(1500)
    rig.advance(29)  # the 30 s start again
    assert rig.meter.relay_closed
    rig.advance(1)
    assert not rig.meter.relay_closed


def test_five_trips_in_30_min_lock_out_for_30_min_then_repeat() -> None:
    rig = limited()
    start = rig.clock.now()
    rig.meter.set_load(1500)
    rig.advance(3 * 3600)
    times = [(round(t, 6), name) for t, name in relay_events(rig, start)]
    trips = [t for t, name in times if name == "overload_trip"]
    reconnects = [t for t, name in times if name == "overload_reconnect"]
    # trips every 150 s (30 s + 2 min); the 5th at 630 s locks out for 1,800 s
    assert trips[:6] == [30, 180, 330, 480, 630, 2460]
    assert reconnects[:5] == [150, 300, 450, 600, 2430]
    assert trips[5:10] == [2460, 2610, 2760, 2910, 3060]
    assert reconnects[5] == 2580 and 3060 + 1800 in reconnects


def test_trips_further_apart_than_30_min_never_lock_out() -> None:
    rig = limited()
    for _ in range(8):
        rig.meter.set_load(1500)
        rig.advance(30)
        assert not rig.meter.relay_closed
        rig.advance(120)
        assert rig.meter.relay_closed
        rig.meter.set_load(500)
        rig.advance(400)  # next trip 550 s later: at most 4 within 30 min
    assert rig.meter.state.memory.overload_open_until is None
    assert len(rig.meter.state.memory.trips) <= 4


def test_load_limit_disconnection_survives_a_power_cycle() -> None:
    rig = limited()
    rig.meter.set_load(1500)
    rig.advance(31)
    assert not rig.meter.relay_closed
    rig.meter.power(False)
    rig.advance(60)
    rig.meter.power(True)
    assert not rig.meter.relay_closed  # the 2 min still run (non-volatile timer)
    rig.advance(58)
    assert not rig.meter.relay_closed
    rig.advance(1)  # 150 s after the overload began
    assert rig.meter.relay_closed


# --- voltage window -----------------------------------------------------------------------


@pytest.mark.parametrize(("volts", "ok"), [(156.4, True), (156.3, False), (303.6, True),
                                          (303.7, False), (230, True), (0, False)])
def test_voltage_window_is_68_to_132_percent_of_un(volts: float, ok: bool) -> None:
    rig = make_rig()
    rig.meter.set_voltage(volts)
    assert rig.meter.snapshot()["voltage_ok"] is ok
    credited(rig, "1")
    assert rig.meter.relay_closed is ok  # outside the window the relay does not operate


def test_relay_catches_up_when_the_voltage_returns(rig: Rig) -> None:
    credited(rig, "1")
    rig.meter.set_load(1000)
    rig.meter.set_voltage(120)
    rig.advance(7200)  # credit runs out; the relay cannot open
    assert rig.meter.relay_closed
    assert rig.meter.state.memory.registers["electricity"] == 0
    rig.meter.set_voltage(231)
    assert not rig.meter.relay_closed  # now set to its intended state


def test_nominal_voltage_is_configurable() -> None:
    rig = make_rig(nominal_voltage=120)
    rig.meter.set_voltage(160)
    assert rig.meter.snapshot()["voltage_ok"] is False
    rig.meter.set_voltage(81.6)
    assert rig.meter.snapshot()["voltage_ok"] is True


# --- tamper and power ---------------------------------------------------------------------


def test_tamper_opens_until_a_clear_tamper_token(rig: Rig) -> None:
    credited(rig, "10")
    rig.meter.tamper("magnetic")
    assert not rig.meter.relay_closed and rig.meter.display().tamper
    rig.meter.power(False)
    rig.meter.power(True)
    assert not rig.meter.relay_closed and rig.meter.display().tamper
    rig.meter.enter(rig.credit("1", at="2024-02-01T10:20:00"))
    assert not rig.meter.relay_closed  # credit alone does not help
    result = rig.meter.enter(rig.management(5, pad=0, at="2024-02-01T10:30:00"))
    assert result.result == "accept"
    assert rig.meter.relay_closed and not rig.meter.display().tamper


def test_power_off_stops_everything_and_keeps_memory(rig: Rig) -> None:
    credited(rig, "10")
    rig.meter.set_load(1000)
    rig.advance(3600)
    rig.meter.power(False)
    assert rig.meter.display().text == "" and not rig.meter.display().powered
    rig.advance(5 * 3600)
    assert rig.meter.state.memory.registers["electricity"] == Decimal("9")
    assert rig.meter.press("1") is None and rig.meter.state.volatile.entry == ""
    result = rig.meter.enter(rig.credit("1", at="2024-02-01T12:00:00"))
    assert (result.result, result.code) == ("not_ready", 16)
    rig.meter.power(True)
    assert rig.meter.relay_closed
    assert rig.meter.state.memory.tids  # TID memory kept
    assert rig.meter.enter(rig.credit("10")).result == "used"
