"""A seeded, bounded fuzz of the compiled line engine's JSON-lines reader against Python's.

Lines of the shapes the engine answers itself (and their near misses) are mutated: bytes
changed, cut out, put in or cut off, JSON tokens put in, spans repeated, lines spliced, and
values swapped for edge values (-0, 18 and 19 digits, 2**63, 1e400, NaN, long strings, escapes,
containers).  The mutated lines run through `sts.engine.stream` (the engine answers or hands
back each line, read in blocks that cut lines anywhere) and through the Python batch runner
alone: the two outputs must be byte-identical, line for line.

The run is deterministic and bounded: STS_FUZZ_SEED (default 1) and STS_FUZZ_RUNS (mutated
lines per job, default 3,000).  scripts/test.sh runs it again with more lines on a build of the
core with AddressSanitizer and UBSan, where a read past a buffer fails the run even when the
output happens to be right.  (Coverage-guided fuzzing with atheris would need the core built by
clang with libFuzzer's instrumentation, and its sanitizer runtime is not gcc's.)
"""

from __future__ import annotations

import json
import os
import random
import re

import pytest

from sts.crypto import native as native_mod
from sts.engine import stream
from tests.conftest import IN_CI
from tests.engine.test_line_engine import _engine, _generate_obj, _generic, _pan, _plain

SEED = int(os.environ.get("STS_FUZZ_SEED", "1"))
RUNS = int(os.environ.get("STS_FUZZ_RUNS", "3000"))
BATCH = 500  # mutated lines per engine run

# put in at random places: JSON punctuation, escapes, bytes that are not ASCII, numbers at the
# engine's limits, and members it knows, so that a mutation reaches past the first byte
_TOKENS = [b'"', b"\\", b"\\u0041", b"\\ud800", b"{", b"}", b"[", b"]", b",", b":", b" ", b"\t",
           b"\r", b"\n", b"\x00", b"\x7f", b"\xff", "\u00e9".encode(), b"null", b"true", b"-",
           b"0", b"-0", b"1e5", b".5", b"E", b"9" * 18, b"9" * 19, b'"id":1,', b'"meter":{},',
           b'"request":{},', b'"token":"1",', b',"ea":7', b',"ken":0', b',"units":"1"',
           b',"rnd":3', b',"tid":5']
# swapped in for a whole value
_VALUES = [b"-0", b"0", b"-1", b"1" * 18, b"-" + b"9" * 18, b"1" * 19, b"9223372036854775807",
           b"-9223372036854775808", b"18446744073709551616", b"1.0", b"1e400", b"-0.0", b"NaN",
           b"Infinity", b"true", b"false", b"null", b"{}", b"[]", b"[1]", b'{"a":1}', b'""',
           b'"\\""', b'"\\u00e9"', b'"' + b"a" * 300 + b'"', b'"' + b"9" * 64 + b'"',
           b'"2014"', b"2014", b"2035", b"1993", b'"sample"', b'"production"', b'"nonesuch"',
           b'"00112233445566778899aabbccddeeff"', b'"0abc12def3456789"', b'"12.5"', b'"1820162.4"',
           b'"1820162.5"', b'"2026-02-29T10:00"', b'"2024-02-29 23:59:59"', b'"600727000000000009"',
           b'"201457"', b"255", b"256", b"16", b"15", b"11", b"7", b"4", b"2",
           b'"56493153725450313471"', b'"73786976294838206464"']
# a member's key and its scalar value
_MEMBER = re.compile(rb'"([a-z_]+)"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
                     rb'|true|false|null)')


@pytest.fixture(autouse=True)
def engine_built() -> None:
    if native_mod.native() is None:
        if IN_CI and os.environ.get(native_mod.ENV_SWITCH) != "0":
            pytest.fail("the compiled core is not built (C compiler missing at install?)")
        pytest.skip("compiled core not available")


def _seeds(rng: random.Random) -> dict[str, list[bytes]]:
    """Good and nearly good lines of both jobs, written compactly or spaced out."""
    seeds: dict[str, list[bytes]] = {"generate": [], "decode": []}
    for i in range(60):
        if i % 2:
            obj = _generate_obj(rng, i)
        else:
            ea = rng.choice([7, 11])
            obj = _plain(ea, rng.choice([2, 4, None] if ea == 7 else [4, None]))
            if "pan" in obj["meter"]:
                obj["meter"]["pan"] = _pan(rng)
            obj["id"] = rng.choice([i, -i, f"l{i}", None])
        obj.setdefault("request", {})["rnd"] = rng.randrange(16)
        separators = rng.choice([(",", ":"), (", ", ": ")])
        line = json.dumps(obj, separators=separators).encode()
        seeds["generate"].append(line)
        answer = json.loads(_engine(line + b"\n", "generate")[0] or b"{}")
        token = (answer.get("tokens") or [f"{rng.randrange(10**20):020d}"])[0]
        decode = {"id": obj.get("id"), "token": token, "meter": obj.get("meter")}
        seeds["decode"].append(json.dumps(decode, separators=separators).encode())
    return seeds


def _mutate(line: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    b = bytearray(line)
    for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
        op = rng.randrange(20)
        at = rng.randrange(len(b) + 1)
        if op < 2 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op < 4:
            del b[at : at + rng.randrange(1, 8)]
        elif op < 7:
            b[at:at] = rng.choice(_TOKENS)
        elif op == 7:
            start = rng.randrange(len(b) + 1)
            b[at:at] = b[start : start + rng.randrange(1, 40)]
        elif op == 8:
            other = rng.choice(others)
            b = b[:at] + other[rng.randrange(len(other) + 1) :]
        elif op == 9:
            b = b[:at]
        else:  # a whole value swapped: the most common step, it keeps the line's structure
            members = list(_MEMBER.finditer(b))
            if not members:
                continue
            m = rng.choice(members)
            value = rng.choice(_VALUES)
            if op < 15:  # the same member's value in another line (often a line still good)
                alike = [x.group(2) for x in _MEMBER.finditer(rng.choice(others))
                         if x.group(1) == m.group(1)]
                value = rng.choice(alike) if alike else value
            b[m.start(2) : m.end(2)] = value
    return bytes(b)


def _draws_rnd(case: bytes) -> bool:
    """Whether a generate line asks for a random RND (then both sides draw their own)."""
    for piece in case.split(b"\n"):
        try:
            obj = json.loads(piece)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and type(obj.get("request", {}).get("rnd") if isinstance(
                obj.get("request"), dict) else 0) is not int:
            return True
    return False


def _compare(text: bytes, job: str, block: int | None, monkeypatch: pytest.MonkeyPatch) -> int:
    """Runs both sides; on a difference, names the input line.  The lines the engine took."""
    got, tally = _engine(text, job, block, monkeypatch)
    want, failed = _generic(text, job)
    if got != want:
        inputs = [x for x in text.split(b"\n") if x.strip()]
        for line, a, b in zip(inputs, got.splitlines(), want.splitlines(), strict=False):
            assert a == b, f"seed {SEED}: the engine differs on {line!r}"
        assert got == want, f"seed {SEED}: the outputs differ in length"
    assert tally.failed == failed
    return len(want.splitlines()) - tally.python


@pytest.mark.parametrize("job", ["generate", "decode"])
def test_mutated_lines_equal_python(job: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(f"{SEED}:{job}")
    seeds = _seeds(rng)[job]
    cases: list[bytes] = []
    while len(cases) < RUNS:
        case = _mutate(rng.choice(seeds), rng, seeds)
        if job == "decode" or not _draws_rnd(case):
            cases.append(case)
    taken = 0
    for start in range(0, len(cases), BATCH):
        text = b"".join(c + b"\n" for c in cases[start : start + BATCH])
        taken += _compare(text, job, rng.choice([97, 1000, 65536, None]), monkeypatch)
        monkeypatch.setattr(stream, "BLOCK", 1 << 20)
    # the mutations keep enough lines whole for the engine to answer some itself
    assert taken > RUNS // 25
