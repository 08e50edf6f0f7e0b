"""Every published token vector is accepted by a meter built from its meter object.

Tokens go in in issue order; a key change set answers PLS-2nd until complete, then Accept;
the TID-bearing token entered again is Used; the first token on another meter is Reject.
Class 1 tokens are accepted by any meter whose MfrCode has the matching size and value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import parse_time
from tests.meter.meter_helpers import METER64, make_rig, token_vectors


def _usable(vector: dict[str, Any]) -> bool:
    expected = vector["expected"]
    if "error" in expected:
        return False
    if (vector.get("note") or "").startswith("nectar-specific"):
        return False
    return all(t is not None for t in expected["tokens"])


VECTORS = [v for v in token_vectors() if _usable(v)]
METER_VECTORS = [v for v in VECTORS if v["request"]["class"] != 1]
CLASS1_VECTORS = [v for v in VECTORS if v["request"]["class"] == 1]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def _meter(meter_obj: dict[str, Any], tables_file: str, **config: Any) -> Meter:
    clock = FakeClock(parse_time("2030-01-01T00:00:00"))
    return Meter.create(parse_config({**meter_obj, "max_credit": None, **config}), clock,
                        tables_file=tables_file)


def test_vectors_are_present() -> None:
    """Guard: the parametrised tests below must not silently shrink to nothing."""
    if not token_vectors():
        pytest.skip("shared vectors not available (outside CI)")
    assert len(METER_VECTORS) > 250
    assert len(CLASS1_VECTORS) >= 40


@pytest.mark.parametrize("vector", METER_VECTORS, ids=_ids(METER_VECTORS))
def test_meter_accepts_vector(vector: dict[str, Any], tables_file: str) -> None:
    request = vector["request"]
    tokens = vector["expected"]["tokens"]
    config: dict[str, Any] = {}
    key_change = request.get("key_change")
    if key_change is not None:
        new_base = key_change["new_meter"].get("base_date")
        if key_change["ro"] and new_base is not None and new_base != vector["meter"].get(
            "base_date"
        ):
            config["rollover_base_date"] = new_base  # tokens do not carry the base date
    meter = _meter(vector["meter"], tables_file, **config)
    kct_count = len(tokens) - (1 if request.get("then") else 0) if key_change else 0
    for index, token in enumerate(tokens):
        result = meter.enter(token)
        if index < kct_count - 1:
            assert result.result in ("key_change_1", "key_change_2"), result
            assert result.display.startswith("PLS-")
        else:
            assert (result.result, result.code, result.display) == ("accept", 1, "Accept")
    last = meter.state.memory
    final_request = request.get("then") or request
    if key_change is not None:
        new = key_change["new_meter"]
        key = last.key
        assert key.decoder_key.hex() == new["decoder_key"]
        assert (key.krn, key.ti, key.kt) == (new["krn"], new["ti"], new["kt"])
        assert key.ken == key_change["ken"]
        if "sgc" in new and (key_change["third_token"] or key.key_bits == 128):
            assert key.sgc == new["sgc"]  # a 2-token 64-bit set does not carry the SGC
        if "rollover_base_date" in config:
            assert key.base_date == new["base_date"]
    if final_request["class"] == 0 and final_request["subclass"] in range(8):
        credited = meter.state.memory.registers[result.register or ""]
        assert result.amount is not None and credited == Decimal(result.amount)
        assert credited != 0 or Decimal(final_request.get("units", "1")) == 0
    if vector["expected"].get("tid") is not None:
        assert result.tid == vector["expected"]["tid"]
        again = meter.enter(tokens[-1])
        assert (again.result, again.code, again.display) == ("used", 10, "Used")


@pytest.mark.parametrize("vector", METER_VECTORS, ids=_ids(METER_VECTORS))
def test_other_meter_rejects_vector(vector: dict[str, Any], tables_file: str) -> None:
    own = vector["meter"]
    flipped = bytes(b ^ 0x5A for b in bytes.fromhex(own["decoder_key"])).hex()
    other = {"ea": own["ea"], "decoder_key": flipped}
    if own["ea"] == 7:
        other["table_set"] = own.get("table_set", "production")
    meter = _meter(other, tables_file)
    result = meter.enter(vector["expected"]["tokens"][0])
    assert (result.result, result.code, result.display) == ("reject", 13, "Reject-1")
    assert meter.state.memory.tids == []


@pytest.mark.parametrize("vector", CLASS1_VECTORS, ids=_ids(CLASS1_VECTORS))
def test_class1_vector_on_matching_meter(vector: dict[str, Any]) -> None:
    request = vector["request"]
    code = request["mfr_code"]
    token = vector["expected"]["tokens"][0]
    rig = make_rig(METER64, mfr_code=code)
    first = rig.meter.enter(token)
    assert (first.result, first.code, first.token_class) == ("accept", 1, 1), first
    assert first.details["control"] == request["control"]
    again = rig.meter.enter(token)  # no TID: a test token may be entered any number of times
    assert again.result == "accept"
    other_code = ("1" + code[1:]) if code[0] != "1" else ("2" + code[1:])
    for wrong in (other_code, "00" if len(code) == 4 else "0000"):
        result = make_rig(METER64, mfr_code=wrong).meter.enter(token)
        assert (result.result, result.code) == ("mfr_code", 14), wrong
