"""Every parser rejects bad input with a stable code and a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from sts.codec import amount as amt
from sts.codec.digits import parse_token
from sts.codec.pan import check_drn, parse_pan
from sts.codec.tid import parse_datetime, tid_at
from sts.crypto.sta import TableSet, load_table_sets, table_set
from sts.engine import decode, generate
from sts.engine.wire import meter_from_json, request_from_json
from sts.errors import StsError

DEMO = {"pan": "600727000000000009", "dkga": 4, "ea": 7, "table_set": "sample",
        "vending_key": "abababababababab949494949494949401234567", "kt": 2, "sgc": "201457",
        "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}


def fails(code: str, field_part: str, func: Any, *args: Any, **kwargs: Any) -> StsError:
    with pytest.raises(StsError) as info:
        func(*args, **kwargs)
    assert info.value.code == code, info.value.message
    assert info.value.field is not None and field_part in info.value.field
    assert info.value.message
    return info.value


@pytest.mark.parametrize("text,why", [
    ("1234", "20 digits"), ("7063050347002872611a", "only digits"),
    ("99999999999999999999", "66-bit"), ("", "20 digits"), ("7063.0503.4700.2872.6114", "'.'"),
])
def test_bad_token_text(text: str, why: str) -> None:
    assert why in fails("token_format", "token", parse_token, text).message


def test_token_accepts_spaces_and_dashes() -> None:
    assert parse_token("7063 0503-4700 2872 6114") == 70630503470028726114


@pytest.mark.parametrize("pan,why", [
    ("60072700000000000", "18 digits"), ("600727000000000008", "Luhn"),
    ("123456000000000009", "IIN"), ("60072700000000000x", "decimal digits"),
    ("1234567890411111111113", "18 digits"),
])
def test_bad_pan(pan: str, why: str) -> None:
    assert why in fails("invalid_pan", "pan", parse_pan, pan).message


@pytest.mark.parametrize("drn", ["12345678904", "1234567890", "abc"])
def test_bad_drn(drn: str) -> None:
    fails("invalid_drn", "drn", check_drn, drn)


@pytest.mark.parametrize("value", ["-1", "1820162.5"])
def test_units_out_of_range(value: str) -> None:
    fails("amount_out_of_range", "units", amt.encode_units, value)


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", "1e400"])
def test_units_not_plain_decimal(value: str) -> None:
    fails("invalid_amount", "units", amt.encode_units, value)


@pytest.mark.parametrize("value", ["-1", "18201625", -1, 18201625,
                                   pytest.param(10**5000, id="5000-digits")])
def test_watts_out_of_range(value: object) -> None:
    fails("amount_out_of_range", "mpl_watts", amt.encode_watts, value)


@pytest.mark.parametrize("value", ["x", 10.5, True, None, "1_000"])
def test_watts_not_a_number(value: object) -> None:
    fails("invalid_amount", "mpl_watts", amt.encode_watts, value)


def test_currency_beyond_range() -> None:
    fails("amount_out_of_range", "currency", amt.encode_currency, "1" + "0" * 35)


@pytest.mark.parametrize("text", ["2024-13-01T00:00", "yesterday", "2024-01-01 25:00"])
def test_bad_datetime(text: str) -> None:
    fails("invalid_input", "issued_at", parse_datetime, text)


def test_rollover_is_reported_not_wrapped() -> None:
    err = fails("tid_out_of_range", "issued_at", tid_at,
                parse_datetime("2024-11-24T20:16:00"), 1993)
    assert "rollover" in err.message and "2024-11-24 20:15" in err.message


def test_before_base_date() -> None:
    fails("tid_out_of_range", "issued_at", tid_at, parse_datetime("2013-12-31T23:59"), 2014)


def test_unknown_base_date() -> None:
    fails("invalid_input", "base_date", tid_at, parse_datetime("2020-01-01T00:00"), 2000)


@pytest.mark.parametrize("change,code,field", [
    ({"pan": "600727000000000008"}, "invalid_pan", "meter.pan"),
    ({"vending_key": "zz"}, "invalid_key", "meter.vending_key"),
    ({"vending_key": "abab"}, "invalid_key", "meter.vending_key"),
    ({"sgc": "12345"}, "invalid_input", "meter.sgc"),
    ({"ti": 100}, "invalid_input", "meter.ti"),
    ({"krn": 0}, "invalid_input", "meter.krn"),
    ({"kt": 4}, "invalid_input", "meter.kt"),
    ({"ea": 8}, "invalid_input", "meter.ea"),
    ({"dkga": 1}, "not_supported", "meter.dkga"),
    ({"dkga": 3}, "not_supported", "meter.dkga"),
    ({"decoder_key": "0000000000000000"}, "invalid_key", "meter.decoder_key"),
    ({"colour": "red"}, "invalid_input", "meter.colour"),
    ({"table_set": "production"}, "config", "table_set"),
])
def test_bad_meter(change: dict[str, Any], code: str, field: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("STS_STA_TABLES", raising=False)
    fails(code, field, meter_from_json, {**DEMO, **change})


def test_vending_key_never_in_error_text() -> None:
    err = fails("invalid_key", "decoder_key", meter_from_json,
                {**DEMO, "decoder_key": "0000000000000000"})
    assert "abab" not in err.message and "87f3" not in err.message


@pytest.mark.parametrize("request_obj,code,field", [
    ({"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00"}, "invalid_input", "units"),
    ({"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": "-5"},
     "amount_out_of_range", "units"),
    ({"class": 0, "subclass": 9, "issued_at": "2020-01-01T00:00", "units": "1"},
     "function", "subclass"),
    ({"class": 2, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": "1"},
     "invalid_input", "units"),
    ({"class": 0, "subclass": 0, "units": "1"}, "invalid_input", "issued_at"),
    ({"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": "1", "rnd": 16},
     "invalid_input", "rnd"),
    ({"class": 1, "subclass": 0, "control": 1, "mfr_code": "123"}, "invalid_input", "mfr_code"),
    ({"class": 1, "subclass": 0, "control": 2**36, "mfr_code": "12"}, "invalid_input",
     "control"),
    ({"class": "0", "subclass": 0}, "invalid_input", "class"),
    ({"class": 2, "subclass": 3, "key_change": {"new_meter": {"krn": 10}}}, "invalid_input",
     "krn"),
    ({"class": 0, "subclass": 0, "issued_at": "2046-01-01T00:00", "units": "1"},
     "tid_out_of_range", "issued_at"),
])
def test_bad_request(request_obj: dict[str, Any], code: str, field: str) -> None:
    meter = meter_from_json(DEMO)

    def run() -> None:
        generate(meter, request_from_json(request_obj, meter))

    fails(code, field, run)


def test_key_expired_and_ddtk_refused_by_vending() -> None:
    meter = meter_from_json({**DEMO, "ken": 10})
    req = {"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": "1"}
    fails("key_expired", "issued_at", lambda: generate(meter, request_from_json(req, meter)))
    ddtk = meter_from_json({**DEMO, "kt": 1})
    fails("ddtk", "kt", lambda: generate(ddtk, request_from_json(req, ddtk)))


def test_decode_with_wrong_key_is_crc_error() -> None:
    meter = meter_from_json(DEMO)
    other = meter_from_json({**DEMO, "pan": "600727111111111153"})
    req = {"class": 0, "subclass": 0, "issued_at": "2020-01-01T00:00", "units": "1", "rnd": 1}
    token = generate(meter, request_from_json(req, meter)).tokens[0].token
    with pytest.raises(StsError) as info:
        decode(token, other)
    assert info.value.code in ("crc", "function")


def test_table_file_errors(tmp_path: Any) -> None:
    missing = tmp_path / "none.json"
    fails("config", "sta_tables", load_table_sets, missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    fails("config", "sta_tables", load_table_sets, bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"production": {"s1": [0, 0], "s2": [], "p": []}}')
    fails("config", "s1", load_table_sets, wrong)
    fails("config", "table_set", table_set, "nope", None)


def test_table_set_inverse_mismatch() -> None:
    data = {"s1": list(range(16)), "s2": list(range(16)), "p": list(range(64)),
            "s1_inv": [1, 0, *range(2, 16)]}
    with pytest.raises(StsError) as info:
        TableSet.from_dict("x", data)
    assert info.value.code == "config"
