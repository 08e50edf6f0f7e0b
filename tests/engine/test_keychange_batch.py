"""The chunk key change path (`sts.engine.keychange_batch`) makes the tokens `engine.generate`
makes, byte for byte, and leaves to it every meter it does not take."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sts.codec.pan import MeterPan, luhn_check_digit, parse_pan
from sts.crypto.sta import table_set
from sts.engine import KeyChangeRequest, MeterKey, generate
from sts.engine.keychange_batch import KeySide, MeterChange, key_change_many
from tests.conftest import load_vectors, sta_tables_file

TABLES = sta_tables_file()


def _pan(rng: random.Random) -> str:
    body = f"{rng.randrange(10**10):010d}"
    drn = body + str(luhn_check_digit(body))
    return MeterPan.from_drn(drn).pan


def _side(rng: random.Random, dkga: int, ea: int, krn: int) -> KeySide:
    vk = rng.randbytes(8 if dkga == 2 else rng.choice((16, 20, 32)))
    base = rng.choice((1993, 2014, 2035))
    return KeySide(dkga, vk, f"{rng.randrange(10**6):06d}", krn, ea, base,
                   table_set("sample") if ea == 7 else None)


def _derive(side: KeySide, pan: str, kt: int, ti: int, ken: int) -> MeterKey:
    return MeterKey.derive(dkga=side.dkga, vending_key=side.vending_key, pan=parse_pan(pan),
                           kt=kt, sgc=side.sgc, ti=ti, krn=side.krn, ea=side.ea,
                           base_date=side.base_date, table_set=side.tables, ken=ken)


def _generic(old: KeySide, new: KeySide, c: MeterChange, ro: bool) -> list[tuple[str, int]]:
    current = _derive(old, c.pan, c.kt, c.ti, c.ken)
    target = _derive(new, c.pan, c.kt, c.new_ti, c.new_ken)
    issue = generate(current, KeyChangeRequest(new_key=target, ro=ro))
    return [(t.token, t.block) for t in issue.tokens]


@pytest.mark.parametrize("seed", range(12))
def test_random_meters_match_generate(seed: int) -> None:
    rng = random.Random(seed)
    ea = 11 if seed % 3 == 0 else 7
    old = _side(rng, 4 if ea == 11 else rng.choice((2, 4)), ea, rng.randrange(1, 10))
    new = _side(rng, 4 if ea == 11 else rng.choice((2, 4)), ea, rng.randrange(1, 10))
    ro = bool(seed % 2)
    changes = [MeterChange(_pan(rng), rng.randrange(3), rng.randrange(100), rng.randrange(256),
                           rng.randrange(100), rng.randrange(256)) for _ in range(40)]
    made = key_change_many(old, new, changes, ro=ro)
    for c, issue in zip(changes, made, strict=True):
        assert issue is not None
        assert issue.tid is None
        assert [(t.token, t.block) for t in issue.tokens] == _generic(old, new, c, ro)
        reference = generate(_derive(old, c.pan, c.kt, c.ti, c.ken),
                             KeyChangeRequest(new_key=_derive(new, c.pan, c.kt, c.new_ti,
                                                              c.new_ken), ro=ro))
        assert issue == reference  # descriptions, classes, subclasses too


def test_meters_it_does_not_take_come_back_as_none() -> None:
    rng = random.Random(7)
    old, new = _side(rng, 4, 7, 1), _side(rng, 4, 7, 2)
    good = MeterChange(_pan(rng), 2, 1, 255, 1, 255)
    bad_pan = MeterChange(good.pan[:-1] + str((int(good.pan[-1]) + 1) % 10), 2, 1, 255, 1, 255)
    bad_ti = MeterChange(good.pan, 2, 1, 255, 100, 255)
    bad_ken = MeterChange(good.pan, 2, 1, 256, 1, 255)
    common = MeterChange(good.pan, 3, 1, 255, 1, 255)
    made = key_change_many(old, new, [good, bad_pan, bad_ti, bad_ken, common], ro=True)
    assert made[0] is not None and made[1:] == [None, None, None, None]
    # a 64-bit key cannot move to a 128-bit one; DKGA02 cannot make an EA11 key
    assert key_change_many(old, _side(rng, 4, 11, 2), [good], ro=False) == [None]
    assert key_change_many(_side(rng, 2, 11, 1), new, [good], ro=False) == [None]
    assert key_change_many(old, new, [], ro=False) == []


def _vector_cases() -> list[Any]:
    cases = []
    for v in load_vectors("token"):
        m, req = v.get("meter") or {}, v.get("request") or {}
        kc = req.get("key_change")
        if not kc or "vending_key" not in m or kc.get("third_token") or "error" in v["expected"]:
            continue
        cases.append(pytest.param(v, id=str(v["id"])))
    return cases or [pytest.param(None, marks=pytest.mark.skip(reason="no vectors available"))]


@pytest.mark.parametrize("v", _vector_cases())
def test_shared_key_change_vectors(v: dict[str, Any]) -> None:
    m, kc = v["meter"], v["request"]["key_change"]
    nm = kc["new_meter"]
    tables = table_set(m["table_set"], TABLES) if m["ea"] == 7 else None
    old = KeySide(m["dkga"], bytes.fromhex(m["vending_key"]), m["sgc"], m["krn"], m["ea"],
                  m["base_date"], tables)
    new = KeySide(m["dkga"], old.vending_key, nm.get("sgc", m["sgc"]), nm["krn"], m["ea"],
                  nm.get("base_date", m["base_date"]), tables)
    change = MeterChange(m["pan"], m["kt"], m["ti"], m.get("ken", 255), nm["ti"],
                         kc.get("ken", 255))
    if nm["kt"] != m["kt"] or (_derive(new, m["pan"], m["kt"], nm["ti"], 255).decoder_key
                               != bytes.fromhex(nm["decoder_key"])):
        pytest.skip("the new key is not derived from the same vending key")
    (issue,) = key_change_many(old, new, [change], ro=bool(kc.get("ro")))
    assert issue is not None
    want = list(zip(v["expected"]["tokens"], v["expected"]["blocks"], strict=True))
    for got, (token, block) in zip(issue.tokens, want[: len(issue.tokens)], strict=True):
        if token is not None:
            assert got.token == token
            assert got.block_hex == block


def test_the_clear_vending_key_stays_out_of_the_repr() -> None:
    side = _side(random.Random(3), 4, 7, 1)
    assert repr(side.vending_key) not in repr(side) and "vending_key" not in repr(side)
