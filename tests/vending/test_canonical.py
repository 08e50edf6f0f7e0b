"""`audit.canonical_plain` writes the text `audit.canonical` writes (stored hashes are over
it), whatever strings, integers and keys the values hold."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from sts.vending.audit import canonical, canonical_plain

ALPHABET = [chr(i) for i in range(0x80)] + ["é", "€", "\u2028", "😀", "\ud800", "\x7f"]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(11 if depth < 3 else 7)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1,
                           10**30, rng.randrange(-(10**6), 10**6)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return Decimal(rng.choice(["0", "1.50", "-0.000001", "1E+3", "NaN"]))
    if kind == 4:
        return datetime(2024, 6, 1, 9, rng.randrange(60), 0, rng.choice([0, 123456]))
    if kind in (5, 6):
        return "ascii-only:" + str(rng.randrange(10**9))
    if kind == 7:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 8:
        return tuple(_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    keys: list[Any] = [_text(rng) for _ in range(rng.randrange(4))]
    if kind == 9 and rng.random() < 0.3:
        keys.append(rng.choice([1, None, True]))  # json turns these into strings
    return {k: _value(rng, depth + 1) for k in keys}


def _outcome(fn: Any, v: Any) -> str:
    try:
        return str(fn(v))
    except (TypeError, ValueError) as exc:  # e.g. json cannot sort None beside str keys
        return f"raises {type(exc).__name__}"


@pytest.mark.parametrize("seed", range(40))
def test_same_text_as_canonical(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        v = _value(rng)
        assert _outcome(canonical_plain, v) == _outcome(canonical, v)


def test_a_key_change_answer_goes_the_fast_way() -> None:
    answer = {"request_id": "campaign:1:2", "receipt_no": "0000000001", "reason": "campaign x",
              "meter": {"pan": "600727000000000009", "krn": 1, "mfr_code": None},
              "key_change": {"to": {"sgc": "999950", "krn": 2}, "rollover": True},
              "tokens": [{"token": "12345678901234567890", "class": 2, "tid": None}]}
    assert canonical_plain(answer) == canonical(answer)
