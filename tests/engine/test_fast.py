"""The vectorised batch path must give exactly what the generic path gives, line for line.

Lines are drawn at random (seeded) from a mix of the common case and its near misses: both
IINs, bad check digits, DKGA02/04, EA07/EA11, key-only meters, reserved minutes, KEN expiry,
odd amounts, other token types, malformed values, values of the wrong JSON type (2.0 for 2,
true for 1), unknown or null fields.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sts.codec.pan import luhn_check_digit
from sts.engine.batch import run_batch
from sts.engine.fast import decode_chunk, generate_chunk
from sts.engine.wire import meter_from_json
from sts.errors import StsError

VK = {2: "abababababababab", 4: "abababababababab949494949494949401234567"}


def _pan(rng: random.Random, valid: bool = True) -> str:
    if rng.random() < 0.7:
        body = f"{rng.randrange(10**10):010d}"
        drn = body + str(luhn_check_digit(body))
        head = "600727" + drn
    else:
        body = f"{rng.randrange(10**12):012d}"
        drn = body + str(luhn_check_digit(body))
        head = "0000" + drn
    check = luhn_check_digit(head)
    if not valid:
        check = (check + rng.randrange(1, 10)) % 10
    return head + str(check)


# wrong-typed or odd stand-ins for a meter field: equal in Python (2.0 == 2, True == 1) but
# not valid JSON input for an integer field, null, or an unknown field
_ODD: list[tuple[str, Any]] = [("dkga", 2.0), ("dkga", 4.0), ("ea", 7.0), ("ea", 11.0),
                               ("kt", False), ("ti", True), ("krn", True), ("ken", 255.0),
                               ("base_date", 2014.0), ("ken", None), ("base_date", None),
                               ("mfr_code", "96"), ("colour", "red"), ("table_set", None),
                               ("vending_key", "abc"), ("sgc", 123456), ("dkga", 3)]


def _meter(rng: random.Random) -> dict[str, Any]:
    dkga = rng.choice([2, 4])
    ea = rng.choice([7, 7, 11, 11]) if dkga == 4 else rng.choice([7] * 9 + [11])
    bd = rng.choice([1993, 2014, 2035])
    meter: dict[str, Any]
    if rng.random() < 0.15:
        size = 16 if ea == 11 else 8
        if rng.random() < 0.05:
            size = 24 - size  # the other EA's key size
        meter = {"ea": ea, "table_set": "sample", "decoder_key": rng.randbytes(size).hex(),
                 "base_date": bd, "ken": rng.choice([255, 200, 3])}
    else:
        meter = {"pan": _pan(rng, rng.random() > 0.05), "dkga": dkga, "ea": ea,
                 "table_set": "sample", "vending_key": VK[dkga], "kt": rng.choice([2, 2, 0, 1]),
                 "sgc": rng.choice(["123456", "201457", "12345"]), "ti": rng.choice([1, 2, 99]),
                 "krn": rng.choice([1, 2, 9]), "ken": rng.choice([255, 255, 100, 10]),
                 "base_date": bd}
    if ea == 11 and rng.random() < 0.5:
        del meter["table_set"]
    if "pan" in meter and rng.random() < 0.15:  # a stated decoder key, right or wrong
        try:
            right = meter_from_json(meter).decoder_key
        except StsError:
            right = bytes(16 if ea == 11 else 8)
        meter["decoder_key"] = (right if rng.random() < 0.7 else rng.randbytes(len(right))).hex()
    if rng.random() < 0.06:
        name, value = rng.choice(_ODD)
        meter[name] = value
    return meter


def _line(rng: random.Random, i: int) -> dict[str, Any]:
    meter = _meter(rng)
    base_date = meter.get("base_date")
    bd = base_date if type(base_date) is int else 2014
    day = rng.randrange(28) + 1
    hour, minute = rng.choice([(0, 1), (0, 0), (13, 59), (23, 59)])
    year = bd + rng.randrange(0, 33)
    request: dict[str, Any] = {
        "class": 0, "subclass": rng.choice([0, 1, 2, 3]), "rnd": rng.randrange(16),
        "units": rng.choice(["0", "0.1", "0.05", "1.25", "25.6", "16383", "1820162.4",
                             "1820162.5", "-1", "1e3", "abc", "7.000", "12."]),
        "issued_at": f"{year}-{rng.randrange(12) + 1:02d}-{day:02d}T{hour:02d}:{minute:02d}:00",
    }
    roll = rng.random()
    if roll < 0.05:
        request["subclass"] = 4
        request.pop("rnd")
        request["currency"] = request.pop("units")
    elif roll < 0.1:
        request = {"class": 2, "subclass": 0, "rnd": 1, "mpl_watts": "1000",
                   "issued_at": request["issued_at"]}
    elif roll < 0.13:
        request["issued_at"] = "2020-02-30T10:00:00"
    elif roll < 0.16:
        del request["issued_at"]
        request["tid"] = rng.randrange(1 << 24)
    elif roll < 0.18:
        # (rnd null means "draw one": random in both paths, so not compared here)
        name = rng.choice(["class", "subclass", "rnd"])
        request[name] = rng.choice([0.0, False, True] + ([None] if name != "rnd" else []))
    elif roll < 0.19:
        request["colour"] = "red"
    line: dict[str, Any] = {"id": f"l{i}", "meter": meter, "request": request}
    if rng.random() < 0.01:
        line["extra"] = 1
    if rng.random() < 0.01:  # next to nothing
        line["meter"] = rng.choice([{}, {"pan": meter.get("pan", "1")}, {"ea": 7}, [], None])
    return line


def _assert_mix(objs: list[tuple[int, Any]], taken: dict[int, str]) -> None:
    """The mix really exercises the fast path, for both ciphers and both DKGAs."""
    kinds = {(obj["meter"].get("ea"), obj["meter"].get("dkga")) for pos, obj in objs
             if pos in taken}
    assert {(7, 2), (7, 4), (11, 4), (7, None), (11, None)} <= kinds
    assert len(taken) > 60


@pytest.mark.parametrize("seed", range(4))
def test_fast_generate_equals_generic(seed: int) -> None:
    rng = random.Random(seed)
    lines = [json.dumps(_line(rng, i)) + "\n" for i in range(600)]
    fast = list(run_batch(lines, "generate", None))
    slow = list(run_batch(lines, "generate", None, fast=False))
    assert fast == slow
    objs = [(i, json.loads(x)) for i, x in enumerate(lines)]
    taken = generate_chunk(objs, None, {})
    _assert_mix(objs, taken)
    assert sum(not ok for _, ok in fast) > 50


@pytest.mark.parametrize("seed", range(3))
def test_fast_decode_equals_generic(seed: int) -> None:
    rng = random.Random(100 + seed)
    src = [_line(rng, i) for i in range(500)]
    made = [json.loads(t) for t, ok in run_batch([json.dumps(x) for x in src], "generate", None)]
    lines = []
    for s, m in zip(src, made, strict=True):
        token = m["tokens"][0] if "tokens" in m else f"{rng.randrange(10**20):020d}"
        meter = s["meter"] if rng.random() > 0.1 else {**s["meter"], "ken": 0}
        lines.append(json.dumps({"id": s["id"], "token": token, "meter": meter}))
    lines.append(json.dumps({"id": "spaced", "token": "1234 5678 9012 3456 7890",
                             "meter": src[0]["meter"]}))
    fast = list(run_batch(lines, "decode", None))
    slow = list(run_batch(lines, "decode", None, fast=False))
    assert fast == slow
    objs = [(i, json.loads(x)) for i, x in enumerate(lines)]
    _assert_mix(objs, decode_chunk(objs, None, {}))


def test_random_rnd_is_filled_in_and_decodes() -> None:
    line = {"id": 1, "meter": {"ea": 7, "table_set": "sample", "decoder_key": "0abc12def3456789",
                               "base_date": 2014},
            "request": {"class": 0, "subclass": 0, "units": "5", "tid": 1000}}
    out = [json.loads(t) for t, _ in run_batch([json.dumps(line)] * 64, "generate", None)]
    rnds = {int(o["blocks"][0][1], 16) for o in out}
    assert len(rnds) > 4  # drawn per token, not fixed
    dec = [json.loads(t) for t, _ in run_batch(
        [json.dumps({"id": o["id"], "token": o["tokens"][0], "meter": line["meter"]}) for o in out],
        "decode", None)]
    assert all(d["units"] == "5.0" and d["tid"] == 1000 for d in dec)
