"""The shared validation primitives: one amount rule, one meter-number rule, one time rule."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sts.codec import amount as amt
from sts.codec.amount import parse_amount_text
from sts.codec.pan import parse_meter_number
from sts.codec.tid import local_vending_time, parse_datetime, parse_time_zone
from sts.engine import TokenRequest, decode, generate
from sts.engine.wire import meter_from_json, request_from_json
from sts.errors import InputError, InvalidAmount, InvalidMeterNumber

DEMO = {"pan": "600727000000000009", "dkga": 4, "ea": 7, "table_set": "sample",
        "vending_key": "abababababababab949494949494949401234567", "kt": 2, "sgc": "201457",
        "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}


# --- amounts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("50", "50"), ("50.00", "50.00"), ("0.1", "0.1"),
                                        ("007", "7")])
def test_plain_amounts_accepted(text: str, value: str) -> None:
    assert parse_amount_text(text, field="amount") == Decimal(value)


@pytest.mark.parametrize("value,shown", [
    ("\u0665\u0660", "'\u0665\u0660'"),           # Arabic-Indic digits
    ("\uff15\uff10", "'\uff15\uff10'"),           # full-width digits
    ("1_000", "'1_000'"), (" 50 ", "' 50 '"), ("5e1", "'5e1'"), ("+5", "'+5'"),
    ("-5", "'-5'"), ("5.", "'5.'"), (".5", "'.5'"), ("", "''"), ("1,000.00", "'1,000.00'"),
    (10.05, "a number (10.05)"), (10, "a number (10)"), (True, "a boolean (true)"),
    (None, "null"), ([1], "a list"), ({"a": 1}, "an object"),
    pytest.param("9" * 5000, "5000 characters", id="5000-chars"),
    pytest.param(10**5000, "digits", id="5000-digits"),
])
def test_amount_rule_refuses_and_says_why(value: Any, shown: str) -> None:
    with pytest.raises(InvalidAmount) as info:
        parse_amount_text(value, field="amount")
    err = info.value
    assert err.code == "invalid_amount" and err.field == "amount"
    assert 'plain decimal string of ASCII digits such as "50.00"' in err.message
    assert shown in err.message


def test_signed_amounts() -> None:
    assert parse_amount_text("-5.5", field="x", signed=True) == Decimal("-5.5")
    with pytest.raises(InvalidAmount):
        parse_amount_text("--5", field="x", signed=True)
    with pytest.raises(InvalidAmount):
        parse_amount_text(Decimal("NaN"), field="x")
    assert parse_amount_text(Decimal("12.5"), field="x") == Decimal("12.5")


@pytest.mark.parametrize("value,code", [("1_000", "invalid_amount"), ("٥٠", "invalid_amount"),
                                        (10.05, "invalid_amount"), (True, "invalid_amount"),
                                        ("-1", "amount_out_of_range")])
def test_engine_units_use_the_rule(value: Any, code: str) -> None:
    meter = meter_from_json(DEMO)
    req = {"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": value}
    with pytest.raises(InputError) as info:
        generate(meter, request_from_json(req, meter))
    assert info.value.code == code and info.value.field is not None
    assert info.value.field.endswith("units")


def test_largest_currency_round_trips_exactly() -> None:
    """sts531-107/CTSA20.12: 36 significant digits survive encode and decode."""
    text = "182044444444444444444444444444.42624"
    sign, exponent, mantissa = amt.encode_currency(text)
    assert amt.format_currency(amt.decode_currency(sign, exponent, mantissa)) == text
    meter = meter_from_json(DEMO)
    issue = generate(meter, TokenRequest(0, 4, {"currency": text}, tid=100))
    assert decode(issue.tokens[0].token, meter).fields["currency"] == text


# --- meter numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,pan", [
    ("12345678903", "600727123456789030"),
    ("1234 5678 903", "600727123456789030"),
    ("1234-5678-903", "600727123456789030"),
    ("600727123456789030", "600727123456789030"),
    ("600727000000000009", "600727000000000009"),
])
def test_meter_number_forms(text: str, pan: str) -> None:
    assert parse_meter_number(text).pan == pan


def test_thirteen_digit_number_is_iin_0000() -> None:
    from sts.codec.pan import luhn_check_digit

    body = "123456789012"
    drn = body + str(luhn_check_digit(body))
    number = parse_meter_number(drn)
    assert number.iin == "0000" and number.drn == drn
    assert parse_meter_number(number.pan) == number


@pytest.mark.parametrize("value,why", [
    ("12345678904", "the check digit is wrong: please re-read the meter number"),
    ("600727000000000008", "the check digit is wrong: please re-read the meter number"),
    ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10\uff13", "ASCII digits 0-9"),
    ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0663", "ASCII digits 0-9"),
    ("1234567890", "11 or 13 digits"),
    ("60072700000000000", "got 17"),
    ("123456000000000009", "IIN 600727 or 0000"),
    ("1234 5678 #", "only the digits"),
    (12345678903, "a number"),
    (None, "null"),
    ("1" * 500, "too long"),
])
def test_meter_number_errors(value: Any, why: str) -> None:
    with pytest.raises(InvalidMeterNumber) as info:
        parse_meter_number(value, field="meter_number")
    assert info.value.code == "invalid_meter_number"
    assert info.value.field == "meter_number"
    assert why in info.value.message


# --- time zones ------------------------------------------------------------------------------

def test_aware_time_converted_into_the_vending_zone() -> None:
    joburg = ZoneInfo("Africa/Johannesburg")
    assert parse_datetime("2026-03-01T08:00Z", tz=joburg) == datetime(2026, 3, 1, 10, 0)
    assert parse_datetime("2026-03-01T10:00+02:00", tz=joburg) == datetime(2026, 3, 1, 10, 0)
    assert parse_datetime("2026-03-01T10:00", tz=joburg) == datetime(2026, 3, 1, 10, 0)
    assert local_vending_time(datetime(2026, 3, 1, 10), None, field="x") == datetime(2026, 3, 1, 10)


@pytest.mark.parametrize("text", ["2026-03-01T10:00Z", "2026-03-01T10:00+02:00"])
def test_offset_without_zone_is_an_error_never_dropped(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_datetime(text, field="issued_at")
    assert "no vending time zone is configured" in info.value.message


def test_engine_never_drops_an_offset() -> None:
    meter = meter_from_json(DEMO)
    naive = {"class": 0, "subclass": 0, "issued_at": "2026-03-01T10:00", "units": "1", "rnd": 1}
    with pytest.raises(InputError) as info:
        request_from_json({**naive, "issued_at": "2026-03-01T10:00+02:00"}, meter)
    assert info.value.field == "request.issued_at"
    zoned = meter_from_json({**DEMO, "time_zone": "Africa/Johannesburg"})
    base = generate(zoned, request_from_json(naive, zoned)).tid
    assert base is not None
    for when, shift in (("2026-03-01T08:00Z", 0), ("2026-03-01T10:00Z", 120),
                        ("2026-03-01T10:00+02:00", 0)):
        req = request_from_json({**naive, "issued_at": when}, zoned)
        assert generate(zoned, req).tid == base + shift
    # the Python API converts an aware datetime the same way, or refuses it
    aware = datetime.fromisoformat("2026-03-01T08:00+00:00")
    assert generate(zoned, TokenRequest(0, 0, {"units": "1"}, issued_at=aware)).tid == base
    with pytest.raises(InputError):
        generate(meter, TokenRequest(0, 0, {"units": "1"}, issued_at=aware))


@pytest.mark.parametrize("name", ["Nowhere/City", "", 5, "../etc/passwd", "Africa"])
def test_unknown_time_zone(name: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_time_zone(name)
    assert info.value.field == "time_zone"
    with pytest.raises(InputError) as info:
        meter_from_json({**DEMO, "time_zone": name})
    assert info.value.field == "meter.time_zone"
