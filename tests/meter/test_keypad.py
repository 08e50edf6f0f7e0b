"""Keypad entry, display timings and the keypad lockout, on a fake clock."""

from __future__ import annotations

import pytest

from tests.meter.meter_helpers import Rig, make_rig


def type_keys(rig: Rig, keys: str) -> None:
    for key in keys:
        assert rig.meter.press(key) is None


def test_digits_echo_with_a_dash_every_four_and_a_counter(rig: Rig) -> None:
    type_keys(rig, "123456789")
    shown = rig.meter.display()
    assert shown.text == "1234-5678-9"
    assert shown.counter == 9
    rig.meter.press("back")
    assert rig.meter.display().text == "1234-5678"
    assert rig.meter.display().counter == 8
    type_keys(rig, "901234567890")
    assert rig.meter.display().text == "1234-5678-9012-3456-7890"


def test_keypad_holds_at_most_twenty_digits(rig: Rig) -> None:
    type_keys(rig, "1" * 25)
    assert rig.meter.display().counter == 20


def test_entry_abandoned_after_20_s_without_a_digit(rig: Rig) -> None:
    type_keys(rig, "1234")
    rig.advance(19)
    type_keys(rig, "5")  # every digit restarts the 20 s
    rig.advance(19.999)
    assert rig.meter.display().counter == 5
    rig.advance(0.001)
    assert rig.meter.display().counter is None
    assert rig.text == "0.00 kWh"  # back to the default screen
    events = [e for e in rig.meter.take_events() if e.name == "entry_timeout"]
    assert len(events) == 1 and events[0].t == rig.clock.now()
    assert rig.meter.press("enter") is None  # nothing left to enter


def test_token_typed_on_the_keypad_is_processed_on_enter(rig: Rig) -> None:
    token = rig.credit("12.5")
    type_keys(rig, token)
    result = rig.meter.press("enter")
    assert result is not None
    assert (result.result, result.code, result.amount) == ("accept", 1, "12.5")


def test_result_shown_3_s_then_amount_5_s_then_credit(rig: Rig) -> None:
    rig.meter.enter(rig.credit("12.5"))
    assert rig.text == "Accept"
    rig.advance(2.999)
    assert rig.text == "Accept"
    rig.advance(0.001)
    assert rig.text == "12.5 kWh"
    rig.advance(4.999)
    assert rig.text == "12.5 kWh"
    rig.advance(0.001)
    assert rig.text == "12.50 kWh"
    assert rig.meter.display().credit and rig.meter.display().relay


def test_short_entry_is_a_format_error(rig: Rig) -> None:
    type_keys(rig, "12345")
    result = rig.meter.press("enter")
    assert result is not None
    assert (result.result, result.code, result.display) == ("format", 6, "Reject-1")
    rig.advance(3)
    assert rig.text == "0.00 kWh"


@pytest.mark.parametrize("bad", ["1234", "abcdefghijabcdefghij", "99999999999999999999"])
def test_malformed_tokens_are_format_errors(rig: Rig, bad: str) -> None:
    result = rig.meter.enter(bad)
    assert (result.result, result.code, result.display) == ("format", 6, "Reject-1")


# --- keypad lockout ---------------------------------------------------------------------

LOCKS = [10, 20, 40, 80, 160, 320, 640, 1280, 1280, 1280]


def test_lockout_sequence_3_wrong_then_doubling_to_1280(rig: Rig) -> None:
    wrong = rig.wrong_token()
    valid = rig.credit("1")
    for count in (1, 2):
        result = rig.meter.enter(wrong)
        assert (result.result, result.code, result.display) == ("reject", 13, f"Reject-{count}")
        assert rig.meter.snapshot()["keypad"]["lockout_remaining"] == 0
    for count, seconds in enumerate(LOCKS, start=3):
        result = rig.meter.enter(wrong)
        assert result.display == f"Reject-{count}"
        assert rig.meter.snapshot()["keypad"]["lockout_remaining"] == seconds
        rig.advance(seconds - 0.5)
        locked = rig.meter.enter(valid)  # meter-specific: not even decrypted
        assert (locked.result, locked.code) == ("lockout", 15)
        assert locked.details["lockout_remaining"] == 1
        assert rig.meter.state.memory.tids == []
        rig.advance(0.5)
    assert rig.meter.enter(valid).result == "accept"  # unlocked; accept resets the count
    assert rig.meter.enter(wrong).display == "Reject-1"


def test_lockout_display_toggles_reject_and_remaining_seconds_every_2_s(rig: Rig) -> None:
    wrong = rig.wrong_token()
    for _ in range(3):
        rig.meter.enter(wrong)
    rig.advance(1)
    rig.meter.enter(rig.credit("1"))  # attempted while locked: 9 s left
    assert rig.text == "REJECT"
    rig.advance(1.9)
    assert rig.text == "REJECT"
    rig.advance(0.1)
    assert rig.text == "7"
    rig.advance(2)
    assert rig.text == "REJECT"
    rig.advance(2)
    assert rig.text == "3"
    rig.advance(3)  # lockout over: default screen
    assert rig.text == "0.00 kWh"


def test_test_tokens_work_during_lockout_and_do_not_reset_it(rig: Rig) -> None:
    wrong = rig.wrong_token()
    for _ in range(3):
        rig.meter.enter(wrong)
    test_token = rig.token({"class": 1, "subclass": 0, "control": 1 << 4, "mfr_code": "00"})[0]
    result = rig.meter.enter(test_token)
    assert (result.result, result.token_class) == ("accept", 1)
    assert rig.meter.enter(rig.credit("1")).result == "lockout"


def test_inputs_during_lockout_do_not_extend_it(rig: Rig) -> None:
    wrong = rig.wrong_token()
    for _ in range(3):
        rig.meter.enter(wrong)
    for _ in range(5):
        assert rig.meter.enter(wrong).result == "lockout"
        assert rig.meter.enter("123").result == "lockout"
    rig.advance(10)
    assert rig.meter.enter(wrong).display == "Reject-4"
    assert rig.meter.snapshot()["keypad"]["lockout_remaining"] == 20


def test_power_cycle_resets_the_lockout(rig: Rig) -> None:
    wrong = rig.wrong_token()
    for _ in range(5):
        rig.meter.enter(wrong)
    assert rig.meter.enter(rig.credit("1")).result == "lockout"
    rig.meter.power(False)
    rig.advance(1)
    rig.meter.power(True)
    assert rig.meter.enter(rig.credit("1")).result == "accept"
    assert rig.meter.enter(wrong).display == "Reject-1"


def test_used_and_old_do_not_count_as_wrong_inputs(rig: Rig) -> None:
    token = rig.credit("1")
    rig.meter.enter(token)
    for _ in range(5):
        assert rig.meter.enter(token).result == "used"
    assert rig.meter.enter(rig.wrong_token()).display == "Reject-1"


def test_lockout_numbers_are_configurable() -> None:
    rig = make_rig(lockout_threshold=2, lockout_initial=5, lockout_max=15)
    wrong = rig.wrong_token()
    rig.meter.enter(wrong)
    seconds = []
    for _ in range(4):
        rig.meter.enter(wrong)
        seconds.append(rig.meter.snapshot()["keypad"]["lockout_remaining"])
        rig.advance(seconds[-1])
    assert seconds == [5, 10, 15, 15]
