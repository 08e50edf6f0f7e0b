"""Every known-answer vector, both directions, by one generic loader, parametrized by id.

generate: meter + request -> tokens, blocks, TID (or the expected error);
decode:   each published token + the meter that must read it -> its block and the request's
          fields (amounts within the standard's round-up step of what was asked).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sts.codec import amount as amt
from sts.codec.crc import crc_field_of
from sts.codec.pan import check_drn, luhn_check_digit, parse_pan
from sts.codec.tid import parse_datetime, tid_at
from sts.crypto import des, misty1
from sts.crypto.sta import table_set
from sts.engine import KeyChangeRequest, MeterKey, decode, generate
from sts.engine.wire import meter_from_json, request_from_json
from sts.errors import StsError
from tests.conftest import sta_tables_file, vector_params

TABLES = sta_tables_file()


def _meter(v: dict[str, Any]) -> MeterKey | None:
    return meter_from_json(v["meter"], tables_file=TABLES) if v.get("meter") else None


@pytest.mark.parametrize("v", vector_params("token"))
def test_generate(v: dict[str, Any]) -> None:
    expected = v["expected"]
    if "error" in expected:
        with pytest.raises(StsError) as info:
            meter = _meter(v)
            generate(meter, request_from_json(v["request"], meter, tables_file=TABLES))
        assert info.value.code == expected["error"]
        return
    meter = _meter(v)
    issue = generate(meter, request_from_json(v["request"], meter, tables_file=TABLES))
    assert len(issue.tokens) == len(expected["tokens"])
    for got, want_token, want_block in zip(issue.tokens, expected["tokens"], expected["blocks"],
                                           strict=True):
        if want_token is not None:
            assert got.token == want_token
            assert got.block_hex == want_block
    assert issue.tid == expected.get("tid")


def _step(field_value: int) -> int:
    step: int = 10 ** (field_value >> 14)  # int ** int is Any to mypy (a negative power is a float)
    return step


def _check_request_fields(fields: dict[str, Any], request: dict[str, Any], block: int) -> None:
    for name, want in request.items():
        if name in ("class", "subclass", "issued_at", "tid", "key_change", "then"):
            continue
        got = fields[name]
        if name == "units":
            tenths_want = Decimal(want) * 10
            tenths_got = Decimal(got) * 10
            assert tenths_want <= tenths_got < tenths_want.to_integral_value("ROUND_CEILING") + \
                _step((block >> 16) & 0xFFFF)
        elif name in ("mpl_watts", "mppul_watts"):
            assert int(Decimal(want)) <= got < int(Decimal(want)) + _step((block >> 16) & 0xFFFF)
        elif name == "currency":
            w, g = Decimal(want), Decimal(got)
            exponent = ((block >> 56) & 7) << 2 | (block >> 30) & 3
            step = Decimal(10**exponent) / 100000
            assert abs(g) <= abs(w) if w < 0 else w <= g
            assert abs(g - w) < step
        elif name == "mfr_code":
            assert got == want
        else:
            assert got == want, name


def _decode_cases(v: dict[str, Any]) -> list[tuple[str, str, MeterKey | None, dict[str, Any]]]:
    """(token, block, meter that reads it, request it came from) for each published token."""
    meter = _meter(v)
    request = v["request"]
    parsed = request_from_json(request, meter, tables_file=TABLES)
    cases = []
    tokens, blocks = v["expected"]["tokens"], v["expected"]["blocks"]
    if isinstance(parsed, KeyChangeRequest):
        n_kct = len(tokens) - (1 if parsed.then is not None else 0)
        for tok, blk in zip(tokens[:n_kct], blocks[:n_kct], strict=True):
            cases.append((tok, blk, meter, request))
        if parsed.then is not None:
            cases.append((tokens[-1], blocks[-1], parsed.new_key, request["then"]))
    else:
        cases.append((tokens[0], blocks[0], meter, request))
    return [c for c in cases if c[0] is not None]


@pytest.mark.parametrize("v", vector_params("token"))
def test_decode(v: dict[str, Any]) -> None:
    if "error" in v["expected"]:
        pytest.skip("error vector: no token to decode")
    for token, block, meter, request in _decode_cases(v):
        decoded = decode(token, meter)
        assert f"{decoded.block:016x}" == block
        if "key_change" in request:
            _check_kct(decoded, v, request["key_change"], meter)
            continue
        assert decoded.token_class == request["class"]
        assert decoded.subclass == request["subclass"]
        if "tid" in v["expected"] and decoded.tid is not None:
            assert decoded.tid == v["expected"]["tid"]
        _check_request_fields(dict(decoded.fields), request, decoded.block)


def _check_kct(decoded: Any, v: dict[str, Any], kc: dict[str, Any], meter: Any) -> None:
    new = kc["new_meter"]
    key = int(new["decoder_key"], 16)
    wide = len(new["decoder_key"]) == 32
    f = decoded.fields
    ken = kc.get("ken", v["meter"].get("ken", 255))
    if decoded.subclass == 3:
        assert (f["ken_high"], f["krn"], f["kt"], f["ro"]) == (ken >> 4, new["krn"], new["kt"],
                                                               kc["ro"])
        assert f["third_token"] == int(bool(kc.get("third_token")) and not wide)
        assert f["key_part"] == key >> (96 if wide else 32)
    elif decoded.subclass == 4:
        assert (f["ken_low"], f["ti"], f["key_part"]) == (ken & 15, new["ti"], key & 0xFFFFFFFF)
    elif decoded.subclass == 8 and not wide:
        assert f["sgc"] == new["sgc"]
    elif decoded.subclass == 8:
        assert (f["sgc_low"], f["key_part"]) == (int(new["sgc"]) & 0xFFF, (key >> 64) & 0xFFFFFFFF)
    else:
        assert (f["sgc_high"], f["key_part"]) == (int(new["sgc"]) >> 12, (key >> 32) & 0xFFFFFFFF)


# --- primitives -------------------------------------------------------------------------------


@pytest.mark.parametrize("v", vector_params("decoder_key"))
def test_decoder_key(v: dict[str, Any]) -> None:
    m = dict(v["meter"])
    m.setdefault("table_set", "sample")  # tables do not enter derivation
    key = meter_from_json(m, tables_file=TABLES)
    assert key.decoder_key.hex() == v["expected"]["decoder_key"]


@pytest.mark.parametrize("v", vector_params("crc"))
def test_crc(v: dict[str, Any]) -> None:
    value = int(v["input"], 16)
    assert f"{crc_field_of(value, bool(v.get('currency'))):04x}" == v["expected"]["crc_field"]


@pytest.mark.parametrize("v", vector_params("amount"))
def test_amount(v: dict[str, Any]) -> None:
    (name, value), = v["input"].items()
    expected = v["expected"]

    def encode() -> tuple[int, int | None, int | None]:
        if name == "units":
            return amt.encode_units(value), None, None
        if name == "mpl_watts":
            return amt.encode_watts(value), None, None
        sign, exponent, mantissa = amt.encode_currency(value)
        return ((exponent & 3) << 14) | mantissa, sign, exponent

    if "error" in expected:
        with pytest.raises(StsError) as info:
            encode()
        assert info.value.code == expected["error"]
        return
    field, sign, exponent = encode()
    assert f"{field:04x}" == expected["field"]
    if "sign" in expected:
        assert (sign, exponent) == (expected["sign"], expected["exponent"])


@pytest.mark.parametrize("v", vector_params("tid"))
def test_tid(v: dict[str, Any]) -> None:
    when = parse_datetime(v["input"]["issued_at"])
    base = v["input"]["base_date"]
    if "error" in v["expected"]:
        with pytest.raises(StsError) as info:
            tid_at(when, base, reserve=False)
        assert info.value.code == v["expected"]["error"]
    else:
        assert tid_at(when, base, reserve=False) == v["expected"]["tid"]


@pytest.mark.parametrize("v", vector_params("luhn"))
def test_luhn(v: dict[str, Any]) -> None:
    assert luhn_check_digit(v["input"]["digits"]) == v["expected"]["check_digit"]


@pytest.mark.parametrize("v", vector_params("pan"))
def test_pan(v: dict[str, Any]) -> None:
    inp, expected = v["input"], v["expected"]
    if "error" in expected:
        with pytest.raises(StsError) as info:
            parse_pan(inp["pan"]) if "pan" in inp else check_drn(inp["drn"])
        assert info.value.code == expected["error"]
        return
    if "pan" in inp:
        pan = parse_pan(inp["pan"])
        assert expected["valid"] is True
        assert (pan.iin, pan.drn) == (expected["iin"], expected["drn"])
        assert pan.pan == inp["pan"]
    else:
        assert check_drn(inp["drn"]) == inp["drn"]
        assert expected["valid"] is True


@pytest.mark.parametrize("v", vector_params("cipher"))
def test_cipher(v: dict[str, Any]) -> None:
    inp = v["input"]
    key = bytes.fromhex(inp["key"])
    plain = int(inp["plaintext"], 16)
    want = int(v["expected"]["ciphertext"], 16)
    if inp["algorithm"] == "sta":
        cipher = table_set(inp["table_set"], TABLES).cipher
        k = int.from_bytes(key, "big")
        assert cipher.encrypt(k, plain) == want
        assert cipher.decrypt(k, want) == plain
    elif inp["algorithm"] == "misty1":
        assert misty1.encrypt(key, plain) == want
        assert misty1.decrypt(key, want) == plain
    else:
        assert des.encrypt(key, plain) == want
        assert des.decrypt(key, want) == plain
