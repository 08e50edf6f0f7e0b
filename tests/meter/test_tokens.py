"""Token validation and actions: TID memory, Full, KEN, DDTK, range/function, management
tokens and the class 1 test/display functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from sts.codec.crc import block_crc
from sts.codec.digits import insert_class, to_digits
from sts.engine import wire
from sts.errors import InputError
from sts.meter.machine import TEST_FUNCTIONS
from tests.meter.meter_helpers import METER64, Rig, make_rig


def minutes_after(base: str, minutes: int) -> str:
    return (datetime.fromisoformat(base) + timedelta(minutes=minutes)).isoformat()


def test_used_token(rig: Rig) -> None:
    token = rig.credit("5")
    assert rig.meter.enter(token).result == "accept"
    again = rig.meter.enter(token)
    assert (again.result, again.code, again.display) == ("used", 10, "Used")
    assert rig.meter.state.memory.registers["electricity"] == Decimal("5.0")


def test_old_after_the_tid_memory_is_full_default_depth_50(rig: Rig) -> None:
    base = "2024-02-01T10:00:00"
    earliest = rig.credit("1", at=minutes_after(base, 3))
    accepted = [rig.meter.enter(rig.credit("1", at=minutes_after(base, 10 + n)))
                for n in range(50)]
    assert [r.result for r in accepted] == ["accept"] * 50
    assert len(rig.meter.state.memory.tids) == 50
    old = rig.meter.enter(earliest)
    assert (old.result, old.code, old.display) == ("old", 9, "Old")
    # newer than the oldest remembered: accepted, and it evicts the oldest
    newer = rig.meter.enter(rig.credit("1", at=minutes_after(base, 70)))
    assert newer.result == "accept"
    tids = rig.meter.state.memory.tids
    assert len(tids) == 50
    assert accepted[0].tid not in tids and newer.tid in tids
    evicted = rig.credit("1", at=minutes_after(base, 10))
    assert rig.meter.enter(evicted).result == "old"  # forgotten, and older than all kept


def test_old_with_a_small_memory_and_out_of_order_tokens() -> None:
    rig = make_rig(tid_memory_depth=3)
    base = "2024-02-01T10:00:00"
    tokens = [rig.credit("1", at=minutes_after(base, m)) for m in (20, 5, 30)]
    results = [rig.meter.enter(token) for token in tokens]
    assert [r.result for r in results] == ["accept"] * 3  # not full yet: any order
    assert rig.meter.enter(rig.credit("1", at=minutes_after(base, 4))).result == "old"
    ten = rig.meter.enter(rig.credit("1", at=minutes_after(base, 10)))
    assert ten.result == "accept"
    assert set(rig.meter.state.memory.tids) == {
        ten.tid, results[0].tid, results[2].tid}  # the 5-minute TID was the oldest
    assert rig.meter.enter(tokens[1]).result == "old"


def test_tid_floor_from_config_makes_earlier_tokens_old() -> None:
    rig = make_rig(tid_floor=5_000_000)
    assert rig.meter.enter(rig.credit("1", at="2023-01-01T00:00:00")).result == "old"
    assert rig.meter.enter(rig.credit("1", at="2024-01-01T00:00:00")).result == "accept"


def test_full_against_the_maximum_credit_and_entered_later() -> None:
    rig = make_rig(max_credit="15")
    first, second = rig.credit("10"), rig.credit("10", at="2024-02-02T10:00:00")
    assert rig.meter.enter(first).result == "accept"
    full = rig.meter.enter(second)
    assert (full.result, full.code, full.display) == ("full", 4, "Full")
    assert rig.meter.state.memory.registers["electricity"] == Decimal("10.0")
    rig.meter.set_load(1000)
    rig.advance(5 * 3600)  # 5 kWh used
    assert rig.meter.enter(second).result == "accept"  # the token stayed valid
    assert rig.meter.state.memory.registers["electricity"] == Decimal("15.0")


def test_each_service_has_its_own_register(rig: Rig) -> None:
    for subclass, units in enumerate(["1.5", "2.5", "3.5", "4.5"]):
        result = rig.meter.enter(rig.credit(units, subclass=subclass,
                                            at=minutes_after("2024-02-01T10:00:00", subclass)))
        assert result.result == "accept" and result.amount == units
    registers = rig.meter.state.memory.registers
    assert [registers[s] for s in ("electricity", "water", "gas", "time")] == [
        Decimal("1.5"), Decimal("2.5"), Decimal("3.5"), Decimal("4.5")]
    assert rig.meter.state.memory.registers["electricity"] == Decimal("1.5")


def test_currency_credit_and_a_negative_transfer(rig: Rig) -> None:
    plus = rig.token({"class": 0, "subclass": 4, "issued_at": "2024-02-01T10:00:00",
                      "currency": "100.00000"})[0]
    minus = rig.token({"class": 0, "subclass": 4, "issued_at": "2024-02-01T10:05:00",
                       "currency": "-30.00000"})[0]
    first = rig.meter.enter(plus)
    second = rig.meter.enter(minus)
    assert first.result == second.result == "accept"
    assert first.amount is not None and first.amount.startswith("100.00")  # rounded up
    assert second.amount is not None and second.amount.startswith("-29.99")  # rounded down
    assert rig.meter.state.memory.registers["currency_electricity"] == Decimal(
        first.amount) + Decimal(second.amount)


def test_key_expiry_number() -> None:
    rig = make_rig({**METER64, "ken": 80})  # TID>>16 of 2024 (base 2014) is 80
    assert rig.meter.enter(rig.credit("1", at="2023-12-01T00:00:00")).result == "accept"
    rig = make_rig({**METER64, "ken": 79})
    vend = wire.meter_from_json({**METER64, "ken": 255})
    token = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-01T00:00:00", "rnd": 1,
                       "units": "1"}, key=vend)[0]
    result = rig.meter.enter(token)
    assert (result.result, result.code, result.display) == ("key_expired", 11, "Err-11")


def test_ddtk_meter_refuses_credit_but_takes_management_tokens() -> None:
    vend = wire.meter_from_json(METER64)
    ddtk_meter = {"ea": 7, "table_set": "sample", "decoder_key": vend.decoder_key.hex(),
                  "kt": 1, "base_date": 2014}
    rig = make_rig(ddtk_meter)
    credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-01T00:00:00",
                        "rnd": 1, "units": "1"}, key=vend)[0]
    result = rig.meter.enter(credit)
    assert (result.result, result.code) == ("ddtk", 12)
    mpl = rig.token({"class": 2, "subclass": 0, "issued_at": "2024-02-01T00:00:00", "rnd": 1,
                     "mpl_watts": 2000}, key=vend)[0]
    assert rig.meter.enter(mpl).result == "accept"


def _raw_token(rig: Rig, token_class: int, subclass: int, payload: int) -> str:
    block = (subclass << 60) | (payload << 16)
    block |= block_crc(token_class, block)
    return to_digits(insert_class(rig.vend.encrypt(block), token_class))


def test_range_and_function_errors_do_not_count_as_wrong_inputs(rig: Rig) -> None:
    # the engine refuses to make it (see test_meter_rule_is_one_rule), so build it by hand:
    # clear_credit (2/1), TID 1000, register 9
    bad_register = _raw_token(rig, 2, 1, (1000 << 16) | 9)
    result = rig.meter.enter(bad_register)
    assert (result.result, result.code, result.display) == ("range", 7, "Err-07")
    reserved = _raw_token(rig, 2, 11, 0x123456789)
    result = rig.meter.enter(reserved)
    assert (result.result, result.code, result.display) == ("function", 8, "Err-08")
    reserved_credit = _raw_token(rig, 0, 9, 0x123456789)
    assert rig.meter.enter(reserved_credit).result == "function"
    assert rig.meter.enter(rig.wrong_token()).display == "Reject-1"


def test_class_3_counts_as_a_wrong_input(rig: Rig) -> None:
    token = to_digits(insert_class(0x0123456789ABCDEF, 3))
    result = rig.meter.enter(token)
    assert (result.result, result.display) == ("function", "Reject-1")


def test_management_tokens_are_stored_and_shown(rig: Rig) -> None:
    at = "2024-02-01T10:00:00"
    results = [
        rig.meter.enter(rig.management(0, at=minutes_after(at, 1), mpl_watts=3500)),
        rig.meter.enter(rig.management(2, at=minutes_after(at, 2), rate=42)),
        rig.meter.enter(rig.management(6, at=minutes_after(at, 3), mppul_watts=700)),
        rig.meter.enter(rig.management(7, at=minutes_after(at, 4), wmf=13)),
        rig.meter.enter(rig.management(10, at=minutes_after(at, 5), index=2, value=77)),
    ]
    assert [r.result for r in results] == ["accept"] * 5
    snap = rig.meter.snapshot()
    assert snap["max_power_limit_watts"] == 3500
    assert snap["tariff_rate"] == 42
    assert snap["max_phase_unbalance_watts"] == 700
    assert snap["water_meter_factor"] == 13
    assert snap["extended"] == {"2": 77}
    rig.advance(3)
    assert rig.text == "E2 77"  # the value follows "Accept"
    assert rig.meter.enter(rig.management(0, at=minutes_after(at, 1), mpl_watts=3500)).result \
        == "used"


def test_clear_credit_one_register_or_all(rig: Rig) -> None:
    at = "2024-02-01T10:00:00"
    for sub in range(3):
        rig.meter.enter(rig.credit("5", subclass=sub, at=minutes_after(at, sub)))
    assert rig.meter.enter(rig.management(1, at=minutes_after(at, 10), register=1)).result \
        == "accept"
    registers = rig.meter.state.memory.registers
    assert (registers["electricity"], registers["water"], registers["gas"]) == (
        Decimal("5.0"), Decimal(0), Decimal("5.0"))
    rig.meter.enter(rig.management(1, at=minutes_after(at, 11), register=0xFFFF))
    assert all(v == 0 for v in rig.meter.state.memory.registers.values())
    assert not rig.meter.relay_closed


def test_class1_control_bits_select_the_documented_functions(rig: Rig) -> None:
    rig.meter.enter(rig.credit("5"))
    rig.meter.set_load(250)
    token = rig.token({"class": 1, "subclass": 0, "control": (1 << 4) | (1 << 5) | (1 << 8),
                       "mfr_code": "00"})[0]
    result = rig.meter.enter(token)
    assert [t["function"] for t in result.details["tests"]] == ["krn", "ti", "power"]
    assert [t["display"] for t in result.details["tests"]] == ["KRN 1", "TI 01", "P 250 W"]
    rig.advance(3)
    assert rig.text == "KRN 1"
    rig.advance(3)
    assert rig.text == "TI 01"
    rig.advance(3)
    assert rig.text == "P 250 W"
    everything = rig.token({"class": 1, "subclass": 0, "control": 1, "mfr_code": "00"})[0]
    result = rig.meter.enter(everything)
    assert [t["function"] for t in result.details["tests"]] == [n for _, n in TEST_FUNCTIONS]
    assert any(e.name == "relay_test" for e in rig.meter.take_events())


def test_class1_four_digit_manufacturer() -> None:
    rig = make_rig(mfr_code="1234")
    token = rig.token({"class": 1, "subclass": 1, "control": 1 << 9, "mfr_code": "1234"})[0]
    result = rig.meter.enter(token)
    assert result.result == "accept"
    assert result.details["tests"][0]["display"].startswith("VEr ")
    short = rig.token({"class": 1, "subclass": 0, "control": 1 << 9, "mfr_code": "12"})[0]
    assert (rig.meter.enter(short).result, rig.meter.enter(short).code) == ("mfr_code", 14)


def test_mfr_code_defaults_from_the_pan() -> None:
    rig = make_rig({**METER64, "pan": "600727475001502312"})
    assert rig.meter.state.memory.key.mfr_code == "47"


@pytest.mark.parametrize("register", [9, 99, 8, 0xFFFE])
def test_meter_rule_is_one_rule(rig: Rig, register: int) -> None:
    """The engine refuses to generate what the meter's decoder refuses (issue 7)."""
    with pytest.raises(InputError) as info:
        rig.management(1, register=register)
    assert info.value.field is not None and info.value.field.endswith("register")
    assert "credit register" in info.value.message
    raw = _raw_token(rig, 2, 1, (2000 << 16) | register)
    assert rig.meter.enter(raw).result == "range"


@pytest.mark.parametrize("register", [0, 1, 4, 5, 6, 7, 0xFFFF])
def test_every_credit_register_is_generated_and_accepted(rig: Rig, register: int) -> None:
    result = rig.meter.enter(rig.management(1, register=register))
    assert result.result == "accept"
