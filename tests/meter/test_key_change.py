"""Key change sets: any order, PLS-1St/PLS-2nd, the 10-minute gap, 2/3/4-token sets, RO and
the TID rollover to a new base date."""

from __future__ import annotations

from typing import Any

import pytest

from sts.engine import KeyChangeRequest, MeterKey, wire
from tests.meter.meter_helpers import METER64, METER128, Rig, make_rig


def kct(rig: Rig, *, ro: int = 0, third: bool = False, ken: int = 255,
        key: MeterKey | None = None, **new: Any) -> tuple[list[str], MeterKey]:
    """The KCT set to a new identity, and the new vending-side key."""
    key = key or rig.vend
    request = {"class": 2, "subclass": 3, "key_change": {
        "new_meter": {"krn": 2, "kt": 2, "ti": 7, **new}, "ro": ro, "ken": ken,
        "third_token": third}}
    parsed = wire.request_from_json(request, key)
    assert isinstance(parsed, KeyChangeRequest)
    return rig.token(request, key=key), parsed.new_key


def test_two_token_set_in_order(rig: Rig) -> None:
    tokens, new_key = kct(rig)
    first = rig.meter.enter(tokens[0])
    assert (first.result, first.code, first.display) == ("key_change_1", 2, "PLS-2nd")
    assert rig.meter.state.memory.key.krn == 1  # nothing changes yet
    second = rig.meter.enter(tokens[1])
    assert (second.result, second.code) == ("accept", 1)
    key = rig.meter.state.memory.key
    assert (key.krn, key.ti, key.kt, key.decoder_key) == (2, 7, 2, new_key.decoder_key)
    old_credit = rig.credit("1", at="2024-02-02T10:00:00")
    assert rig.meter.enter(old_credit).result == "reject"
    new_credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-02T10:00:00",
                            "rnd": 1, "units": "2"}, key=new_key)[0]
    assert rig.meter.enter(new_credit).result == "accept"


def test_second_token_first_asks_for_the_first(rig: Rig) -> None:
    tokens, new_key = kct(rig)
    second = rig.meter.enter(tokens[1])
    assert (second.result, second.code, second.display) == ("key_change_2", 3, "PLS-1St")
    assert rig.text == "PLS-1St"
    first = rig.meter.enter(tokens[0])
    assert first.result == "accept"
    assert rig.meter.state.memory.key.decoder_key == new_key.decoder_key


def test_set_forgotten_after_more_than_10_minutes(rig: Rig) -> None:
    tokens, _ = kct(rig)
    rig.meter.enter(tokens[0])
    rig.advance(600)  # exactly 10 minutes: still within the set
    assert rig.meter.enter(tokens[1]).result == "accept"

    rig2 = make_rig()
    tokens, _ = kct(rig2)
    rig2.meter.enter(tokens[0])
    rig2.advance(600.5)
    assert rig2.meter.snapshot()["key_change_pending"] == []
    assert any(e.name == "key_change_timeout" for e in rig2.meter.take_events())
    late = rig2.meter.enter(tokens[1])
    assert (late.result, late.display) == ("key_change_2", "PLS-1St")
    assert rig2.meter.state.memory.key.krn == 1


def test_a_held_section_does_not_survive_a_power_cycle(rig: Rig) -> None:
    tokens, _ = kct(rig)
    rig.meter.enter(tokens[0])
    rig.meter.power(False)
    rig.meter.power(True)
    assert rig.meter.enter(tokens[1]).display == "PLS-1St"


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_three_token_set_carries_the_new_sgc(order: tuple[int, int, int]) -> None:
    rig = make_rig()
    tokens, new_key = kct(rig, third=True, sgc="654321")
    results = [rig.meter.enter(tokens[i]) for i in order]
    assert [r.result for r in results[:2]] != ["accept"] * 2
    assert results[0].display.startswith("PLS-") and results[1].display.startswith("PLS-")
    assert results[2].result == "accept"
    key = rig.meter.state.memory.key
    assert (key.sgc, key.decoder_key) == ("654321", new_key.decoder_key)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_four_token_128_bit_set_any_order(order: tuple[int, ...]) -> None:
    rig = make_rig(METER128)
    tokens, new_key = kct(rig, sgc="777777")
    assert len(tokens) == 4
    results = [rig.meter.enter(tokens[i]) for i in order]
    assert all(r.result in ("key_change_1", "key_change_2") for r in results[:3])
    assert results[-1].result == "accept"
    key = rig.meter.state.memory.key
    assert (key.decoder_key, key.sgc, key.krn, key.ti) == (new_key.decoder_key, "777777", 2, 7)
    credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-02T10:00:00",
                        "rnd": 1, "units": "2"}, key=new_key)[0]
    assert rig.meter.enter(credit).result == "accept"


def test_display_names_the_first_missing_section_of_a_128_bit_set() -> None:
    rig = make_rig(METER128)
    tokens, _ = kct(rig)
    assert rig.meter.enter(tokens[0]).display == "PLS-2nd"
    assert rig.meter.enter(tokens[1]).display == "PLS-3rd"
    assert rig.meter.enter(tokens[2]).display == "PLS-4th"


def test_new_ken_takes_effect_and_an_expired_key_can_be_changed() -> None:
    rig = make_rig({**METER64, "ken": 10})
    vend = wire.meter_from_json({**METER64, "ken": 255})
    credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-02T10:00:00",
                        "rnd": 1, "units": "2"}, key=vend)[0]
    assert rig.meter.enter(credit).result == "key_expired"
    tokens, new_key = kct(rig, ken=200)
    for token in tokens:
        rig.meter.enter(token)
    assert rig.meter.state.memory.key.ken == 200
    credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-02-02T10:00:00",
                        "rnd": 1, "units": "2"}, key=new_key)[0]
    assert rig.meter.enter(credit).result == "accept"


def test_key_type_not_allowed_and_range_checks() -> None:
    rig = make_rig(key_types=[2])
    tokens, _ = kct(rig, kt=0)
    result = rig.meter.enter(tokens[0])
    assert (result.result, result.code) == ("key_type", 5)
    assert rig.meter.snapshot()["key_change_pending"] == []


def test_wrong_key_kct_is_a_reject(rig: Rig) -> None:
    other = wire.meter_from_json({**METER64, "vending_key": "0123456789abcdef"})
    tokens, _ = kct(rig, key=other)
    assert rig.meter.enter(tokens[0]).result == "reject"


def test_rollover_key_change_clears_tids_and_new_base_date_tokens_follow() -> None:
    # a 1993 meter near the end of its TID range, memory full of late TIDs
    late = [16_700_000 + n for n in range(5)]
    rig = make_rig({**METER64, "base_date": 1993}, start="2024-11-20T10:00:00",
                   tid_memory_depth=5, tids=late, rollover_base_date=2014)
    tokens, new_key = kct(rig, ro=1, base_date=2014)
    new_credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-11-25T08:00:00",
                            "rnd": 1, "units": "3"}, key=new_key)[0]
    assert rig.meter.enter(new_credit).result == "reject"  # not yet the meter's key
    for token in tokens:
        rig.meter.enter(token)
    memory = rig.meter.state.memory
    assert memory.tids == [] and memory.key.base_date == 2014 and memory.next_base_date is None
    result = rig.meter.enter(new_credit)
    assert result.result == "accept"
    assert result.tid is not None and result.tid < late[0]  # counts from 2014
    assert rig.meter.enter(new_credit).result == "used"


def test_without_rollover_bit_the_tid_memory_stays() -> None:
    late = [16_700_000 + n for n in range(5)]
    rig = make_rig({**METER64, "base_date": 1993}, tid_memory_depth=5, tids=late)
    tokens, new_key = kct(rig, ro=0, base_date=2014)
    for token in tokens:
        rig.meter.enter(token)
    assert rig.meter.state.memory.tids == late
    credit = rig.token({"class": 0, "subclass": 0, "issued_at": "2024-11-25T08:00:00",
                        "rnd": 1, "units": "3"}, key=new_key)[0]
    assert rig.meter.enter(credit).result == "old"
