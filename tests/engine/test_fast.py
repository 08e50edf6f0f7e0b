"""The vectorised batch path must give exactly what the generic path gives, line for line.

Lines are drawn at random (seeded) from a mix of the common case and its near misses: both
IINs, bad check digits, DKGA02/04, key-only meters, reserved minutes, KEN expiry, odd amounts,
other token types, malformed values.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sts.codec.pan import luhn_check_digit
from sts.engine.batch import run_batch
from sts.engine.fast import decode_chunk, generate_chunk

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


def _line(rng: random.Random, i: int) -> dict[str, Any]:
    dkga = rng.choice([2, 4])
    bd = rng.choice([1993, 2014, 2035])
    meter: dict[str, Any]
    if rng.random() < 0.15:
        meter = {"ea": 7, "table_set": "sample", "decoder_key": f"{rng.getrandbits(64):016x}",
                 "base_date": bd, "ken": rng.choice([255, 200, 3])}
    else:
        meter = {"pan": _pan(rng, rng.random() > 0.05), "dkga": dkga, "ea": 7,
                 "table_set": "sample", "vending_key": VK[dkga], "kt": rng.choice([2, 2, 0, 1]),
                 "sgc": rng.choice(["123456", "201457", "12345"]), "ti": rng.choice([1, 2, 99]),
                 "krn": rng.choice([1, 2, 9]), "ken": rng.choice([255, 255, 100, 10]),
                 "base_date": bd}
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
    return {"id": f"l{i}", "meter": meter, "request": request}


@pytest.mark.parametrize("seed", range(4))
def test_fast_generate_equals_generic(seed: int) -> None:
    rng = random.Random(seed)
    lines = [json.dumps(_line(rng, i)) + "\n" for i in range(600)]
    fast = list(run_batch(lines, "generate", None))
    slow = list(run_batch(lines, "generate", None, fast=False))
    assert fast == slow
    objs = [(i, json.loads(x)) for i, x in enumerate(lines)]
    assert len(generate_chunk(objs, None, {})) > 80  # the mix really exercises the fast path
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
    assert len(decode_chunk(objs, None, {})) > 60  # (the mix holds many refused amounts)


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
