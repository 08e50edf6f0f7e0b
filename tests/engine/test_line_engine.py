"""The compiled line engine (`lines.c`, driven by `sts.engine.stream`) against the Python paths.

Every line the engine answers must read byte for byte as the generic path writes it, and every
other line must be handed back and answered by Python, in order, with its line number.  Lines
are drawn at random (seeded) from the common shapes and their near misses, then written out
with textual mutations the JSON reader sees and the objects do not: whitespace, key order,
escapes, unicode, duplicate keys, big integers, floats, booleans, CRLF, blank lines, no final
newline, and read blocks that cut lines anywhere.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sts.codec.layouts import layout_for
from sts.codec.pan import luhn_check_digit
from sts.crypto import misty1
from sts.crypto import native as native_mod
from sts.engine import stream
from sts.engine.batch import run_batch
from sts.engine.wire import meter_from_json
from sts.errors import StsError
from tests.conftest import IN_CI, sta_tables_file, vectors_dir

TABLES = sta_tables_file()
SAMPLE_DK = {7: "0abc12def3456789", 11: "00112233445566778899aabbccddeeff"}


@pytest.fixture(autouse=True)
def engine_built() -> None:
    if native_mod.native() is None:
        if IN_CI and os.environ.get(native_mod.ENV_SWITCH) != "0":
            pytest.fail("the compiled core did not build (C compiler missing?)")
        pytest.skip("compiled core not available")


# --- lines -----------------------------------------------------------------------------------


def _pan(rng: random.Random) -> str:
    if rng.random() < 0.7:
        body = f"{rng.randrange(10**10):010d}"
        head = "600727" + body + str(luhn_check_digit(body))
    else:
        body = f"{rng.randrange(10**12):012d}"
        head = "0000" + body + str(luhn_check_digit(body))
    check = luhn_check_digit(head)
    if rng.random() < 0.04:  # a bad PAN check digit
        check = (check + rng.randrange(1, 10)) % 10
    if rng.random() < 0.02:  # a bad DRN check digit
        head = head[:16] + str((int(head[16]) + 1) % 10)
        check = luhn_check_digit(head)
    return head + str(check)


def _meter(rng: random.Random) -> dict[str, Any]:
    ea = rng.choice([7, 11])
    dkga = 4 if ea == 11 else rng.choice([2, 4])
    bd = rng.choice([1993, 2014, 2035])
    names = ["sample"] + (["production"] if TABLES else []) + ["nonesuch"] * (rng.random() < 0.03)
    meter: dict[str, Any]
    if rng.random() < 0.2:
        meter = {"ea": ea, "decoder_key": rng.randbytes(16 if ea == 11 else 8).hex(),
                 "base_date": bd, "ken": rng.choice([255, 255, 255, 200, 3])}
    else:
        size = 8 if dkga == 2 else rng.choice([16, 20, 32, 55, 56, 63, 64])
        meter = {"pan": _pan(rng), "dkga": dkga, "ea": ea, "vending_key": rng.randbytes(size).hex(),
                 "kt": rng.choice([2, 2, 2, 2, 0, 1]), "sgc": rng.choice(["123456", "201457", "000000"]),
                 "ti": rng.choice([0, 1, 7, 99]), "krn": rng.choice([1, 2, 9]),
                 "ken": rng.choice([255, 255, 255, 100, 10]), "base_date": bd}
        if rng.random() < 0.2:  # a stated decoder key, right or wrong
            try:
                right = meter_from_json({**meter, "table_set": "sample"}).decoder_key.hex()
            except StsError:
                right = "00" * (16 if ea == 11 else 8)
            meter["decoder_key"] = right if rng.random() < 0.7 else right[::-1]
        if rng.random() < 0.05:
            meter["vending_key"] = meter["vending_key"].upper()
    if rng.random() < (0.9 if ea == 7 else 0.3):  # else "production", or none for EA11
        meter["table_set"] = rng.choice(names)
    if rng.random() < 0.05:
        meter.pop("base_date")
    return meter


def _request(rng: random.Random, base_date: int) -> dict[str, Any]:
    year = base_date + (rng.randrange(-1, 33) if rng.random() < 0.2 else rng.randrange(31))
    month, day = rng.randrange(12) + 1, rng.randrange(31 if rng.random() < 0.1 else 28) + 1
    hour, minute = rng.choice([(0, 1), (0, 0), (13, 59), (23, 59), (24, 0) if rng.random() < 0.2
                               else (7, 7)])
    sep = rng.choice("T" * 18 + " x")
    stamp = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}"
    if rng.random() < 0.1:
        stamp += rng.choice([":59", "", ":60", ".5", "+02:00", "Z", ":00+00:00"])
    else:
        stamp += ":00"
    units = rng.choice(["0", "0.1", "0.05", "1.25", "25.6", "16383", "16383.1", "180214",
                        "1820162.4", "1820162.5", "1820162.40", "00012.5", "7.000"])
    if rng.random() < 0.15:
        units = rng.choice(["-1", "1e3", "abc", "12.", ".5", "", "1" * 41, "99999999999"])
    request: dict[str, Any] = {"class": 0, "subclass": rng.choice([0, 1, 2, 3]),
                               "rnd": rng.randrange(16), "units": units, "issued_at": stamp}
    roll = rng.random()
    if roll < 0.15:
        del request["issued_at"]
        request["tid"] = rng.choice([0, 1, rng.randrange(1 << 24), (1 << 24) - 1, 1 << 24, -1])
    elif roll < 0.2:
        request["subclass"] = rng.choice([4, 5, -1])
    elif roll < 0.25:
        request = {"class": rng.choice([1, 2]), "subclass": 0, "rnd": 1, "mpl_watts": "1000",
                   "issued_at": stamp}
    elif roll < 0.27:
        request["colour"] = "red"
    return request


def _generate_obj(rng: random.Random, i: int) -> dict[str, Any]:
    meter = _meter(rng)
    obj: dict[str, Any] = {"id": _id(rng, i), "meter": meter,
                           "request": _request(rng, meter.get("base_date", 2014))}
    if rng.random() < 0.03:
        del obj["id"]
    return obj


def _id(rng: random.Random, i: int) -> Any:
    if rng.random() < 0.7:
        return rng.choice([f"l{i}", i, -i, None, ""])
    return rng.choice([f"l{i}", f"l{i}", i, -i, None, f"caf\u00e9 {i}", f"tab\t{i}", f'q"{i}',
                       f"back\\{i}", f"del\x7f{i}", True, 2.5, [i], {"n": i}, 2**63, -(2**70),
                       "", "\U0001f600"])


# textual variants of a value or a whole line: what the JSON reader sees, the objects do not
_NUMBER_FORMS: list[Callable[[int], str]] = [
    lambda v: f"{v}.0", lambda v: f"{v}e0", lambda v: "true" if v == 1 else "false",
    lambda v: "null", lambda v: f'"{v}"', lambda v: f"{v:021d}"[-21:].lstrip("0") + "0" * 19,
    lambda v: f"-{v}" if v == 0 else f"{v}"]


def _write(value: Any, rng: random.Random, mutate: float, key: str = "") -> str:
    """JSON text of value, with random whitespace, key order and (rarely) other spellings
    (never `"rnd": null`, which draws a random RND on both sides)."""
    space = rng.choice(["", "", " ", "  ", "\t", " \r"]) if rng.random() < mutate * 3 else ""
    if isinstance(value, dict):
        items = list(value.items())
        if rng.random() < mutate:
            rng.shuffle(items)
        parts = [f"{space}{json.dumps(k)}{space}:{space}{_write(v, rng, mutate, k)}"
                 for k, v in items]
        if items and rng.random() < mutate / 2:  # a key twice (Python's json keeps the last)
            k, v = rng.choice(items)
            parts.append(f"{json.dumps(k)}:{_write(v if rng.random() < 0.5 else 1, rng, 0)}")
        return "{" + ",".join(parts) + space + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(v, rng, mutate) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=rng.random() < 0.7)
        if value and rng.random() < mutate / 4:  # one character as an escape
            at = rng.randrange(len(value))
            escaped = f"\\u{ord(value[at]):04x}" if ord(value[at]) < 0x10000 else value[at]
            text = json.dumps(value[:at])[:-1] + escaped + json.dumps(value[at + 1:])[1:]
        elif "/" not in value and rng.random() < mutate / 8:
            text = text[:-1] + "\\/" + '"'
        return text
    if type(value) is int and rng.random() < mutate / 4:
        text = str(rng.choice(_NUMBER_FORMS)(value))
        return text if not (key == "rnd" and text == "null") else json.dumps(value)
    return json.dumps(value)


def _text(objs: list[dict[str, Any]], rng: random.Random, mutate: float = 0.04) -> bytes:
    out = []
    for obj in objs:
        line = _write(obj, rng, mutate)
        roll = rng.random()
        if roll < 0.03:
            out.append(rng.choice(["", "   ", "\t\r", "\x0b", "\x0c "]) + "\n")  # blank
        elif roll < 0.05:
            line = line[: rng.randrange(len(line))]  # cut short
        elif roll < 0.06:
            line = "\ufeff" + line
        out.append(line + rng.choice(["\n"] * 8 + ["\r\n", " \n"]))
    text = "".join(out)
    if rng.random() < 0.5:
        text = text.rstrip("\n")  # no final newline
    return text.encode("utf-8", "surrogatepass")


def _generic(text: bytes, job: str, *, fast: bool = False) -> tuple[bytes, int]:
    """(output, failed lines) of the Python batch runner over the lines as a file gives them."""
    out, failed = [], 0
    for answer, ok in run_batch(list(io.BytesIO(text)), job, TABLES, fast=fast):
        out.append(answer + "\n")
        failed += not ok
    return "".join(out).encode(), failed


def _engine(text: bytes, job: str, block: int | None = None,
            monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[bytes, stream.Tally]:
    if block is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(stream, "BLOCK", block)
    out = io.BytesIO()
    tally = stream.run_stream(io.BytesIO(text), out.write, job, TABLES)
    return out.getvalue(), tally


def _same(text: bytes, job: str, block: int | None = None,
          monkeypatch: pytest.MonkeyPatch | None = None) -> stream.Tally:
    got, tally = _engine(text, job, block, monkeypatch)
    want, failed = _generic(text, job)
    assert got.splitlines() == want.splitlines()
    assert got == want
    assert tally.failed == failed
    return tally


# --- the engine equals the Python paths --------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_generate_equals_generic(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    objs = [_generate_obj(rng, i) for i in range(700)]
    text = _text(objs, rng)
    tally = _same(text, "generate", rng.choice([None, 97, 1000, 4096]), monkeypatch)
    lines = text.count(b"\n") + 1
    assert 0.2 * lines < tally.python < 0.85 * lines  # both sides really answer
    assert tally.failed > 50
    # the Python fast path agrees too
    assert _engine(text, "generate")[0] == _generic(text, "generate", fast=True)[0]


@pytest.mark.parametrize("seed", range(3))
def test_decode_equals_generic(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(100 + seed)
    src = [_generate_obj(rng, i) for i in range(600)]
    made = [json.loads(t) for t, _ in run_batch([json.dumps(x) for x in src], "generate",
                                                 TABLES, fast=False)]
    objs = []
    for s, m in zip(src, made, strict=True):
        token = m["tokens"][0] if "tokens" in m else f"{rng.randrange(10**20):020d}"
        if rng.random() < 0.05:
            token = f"{rng.randrange(2**66, 10**20):020d}"  # beyond 66 bits
        meter = s["meter"] if rng.random() > 0.1 else {**s["meter"], "ken": 0}
        objs.append({"id": s.get("id"), "token": token, "meter": meter})
    objs.append({"id": "spaced", "token": "1234 5678 9012 3456 7890", "meter": src[0]["meter"]})
    objs.append({"id": "number", "token": 12345678901234567890, "meter": src[0]["meter"]})
    objs.append({"id": "extra", "token": "12345678901234567890", "meter": src[0]["meter"],
                 "request": {}})
    text = _text(objs, rng)
    tally = _same(text, "decode", rng.choice([None, 61, 2048]), monkeypatch)
    lines = text.count(b"\n") + 1
    assert 0.2 * lines < tally.python < 0.85 * lines
    assert _engine(text, "decode")[0] == _generic(text, "decode", fast=True)[0]


def _plain(ea: int, dkga: int | None) -> dict[str, Any]:
    meter: dict[str, Any]
    if dkga is None:
        meter = {"ea": ea, "decoder_key": SAMPLE_DK[ea], "base_date": 2014}
    else:
        meter = {"pan": "600727000000000009", "dkga": dkga, "ea": ea, "kt": 2, "sgc": "201457",
                 "ti": 1, "krn": 1, "base_date": 2014,
                 "vending_key": "abababababababab949494949494949401234567"[: 16 if dkga == 2 else 40]}
    if ea == 7:
        meter["table_set"] = "sample"
    return {"id": "x", "meter": meter,
            "request": {"class": 0, "subclass": 1, "rnd": 5, "units": "12.5",
                        "issued_at": "2026-11-21T00:01:30"}}


@pytest.mark.parametrize("portable", [True, False])
def test_both_sha256_forms_derive_dkga04_keys(portable: bool) -> None:
    """The processor's SHA extensions (when it has them) and the portable SHA-256."""
    nat = native_mod.native()
    assert nat is not None
    nat.sha256_form(portable)
    try:
        rng = random.Random(portable)
        objs = []
        for i in range(300):
            obj = _plain(rng.choice([7, 11]), 4)
            size = rng.randrange(16, 65)
            obj["meter"].update(pan=_pan(rng), vending_key=rng.randbytes(size).hex())
            obj["id"] = i
            objs.append(obj)
        text = "".join(json.dumps(o) + "\n" for o in objs).encode()
        assert _same(text, "generate").python < 30
    finally:
        nat.sha256_form(False)


@pytest.mark.parametrize(("ea", "dkga"), [(7, 2), (7, 4), (11, 4), (7, None), (11, None)])
def test_every_common_shape_is_answered_in_c(ea: int, dkga: int | None) -> None:
    obj = _plain(ea, dkga)
    text = (json.dumps(obj) + "\n").encode()
    assert _same(text, "generate").python == 0
    token = json.loads(_engine(text, "generate")[0])["tokens"][0]
    decode = (json.dumps({"id": 7, "token": token, "meter": obj["meter"]}) + "\n").encode()
    tally = _same(decode, "decode")
    assert tally.python == 0 and tally.failed == 0
    assert json.loads(_engine(decode, "decode")[0])["issued_at"] == "2026-11-21T00:02:00"


# each of these is one line the engine must hand back (and Python answer, as always)
_HANDED_BACK = [
    '{"id":"a\\u0062","meter":M,"request":R}',  # an escape in the id
    '{"id":"\u00e9","meter":M,"request":R}',  # non-ASCII
    '{"id":"x","id":"y","meter":M,"request":R}',  # a key twice
    '{"id":12345678901234567890,"meter":M,"request":R}',  # beyond 64 bits
    '{"id":1.0,"meter":M,"request":R}',
    '{"id":true,"meter":M,"request":R}',
    '{"id":"x","meter":M,"request":R,"note":1}',
    '{"id":"x","meter":M,"request":{"class":0,"class":0,"subclass":1,"rnd":5,"units":"1",'
    '"tid":5}}',
    '{"id":"x","meter":M,"request":{"class":0.0,"subclass":1,"rnd":5,"units":"1","tid":5}}',
    '{"id":"x","meter":M,"request":{"class":false,"subclass":1,"rnd":5,"units":"1","tid":5}}',
    '{"id":"x","meter":M,"request":{"class":0,"subclass":1,"rnd":16,"units":"1","tid":5}}',
    '{"id":"x","meter":M,"request":{"class":0,"subclass":1,"rnd":5,"units":1,"tid":5}}',
    '{"id":"x","meter":M,"request":{"class":0,"subclass":1,"rnd":5,"units":"1","tid":5,'
    '"issued_at":"2026-01-01T00:00"}}',
    '{"id":"x","meter":M,"request":R}garbage',
    '["x"]',
    '{"id":"x","meter":M,"request":R',
]


@pytest.mark.parametrize("line", _HANDED_BACK)
def test_lines_it_must_hand_back(line: str) -> None:
    obj = _plain(11, 4)
    text = line.replace("M", json.dumps(obj["meter"])).replace("R", json.dumps(obj["request"]))
    assert _same((text + "\n").encode(), "generate").python == 1


DROP = "(no such field)"
# meters the engine must leave to Python: (EA, DKGA, fields to change, DROP to remove one)
_ODD_METERS: list[tuple[int, int | None, dict[str, Any]]] = [
    (11, 4, {"time_zone": "Africa/Johannesburg"}),  # the time needs converting
    (11, 4, {"mfr_code": "96"}),
    (7, 2, {"table_set": None}),
    (7, 2, {"vending_key": "abab abab abab abab"}),  # bytes.fromhex takes spaces
    (11, 4, {"base_date": DROP}),
    (7, 2, {"ken": None}),
    (7, 4, {"kt": 1}),  # a default key (DDTK)
    (7, 2, {"dkga": 1}),
    (11, 2, {}),
    (7, 4, {"vending_key": "ab" * 15}),
    (7, 4, {"vending_key": "ab" * 65}),
    (11, None, {"decoder_key": "00" * 8}),
    (7, None, {"pan": "600727000000000009"}),
    (7, 2, {"pan": "600727000000000009 "}),
    (7, 2, {"sgc": "２０１４５７"}),
]


@pytest.mark.parametrize(("ea", "dkga", "change"), _ODD_METERS)
def test_meters_it_must_hand_back(ea: int, dkga: int | None, change: dict[str, Any]) -> None:
    obj = _plain(ea, dkga)
    for name, value in change.items():
        if value == DROP:
            obj["meter"].pop(name)
        else:
            obj["meter"][name] = value
    text = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
    assert _same(text, "generate").python == 1


def test_blank_lines_crlf_split_blocks_and_no_final_newline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    good = json.dumps(_plain(11, 4))
    bad = '{"id": "bad", "meter": {}}'
    text = f"\n{good}\r\n  \t\n{bad}\n\x0b\n{good}  \n\n{bad}\n{good}".encode()
    for block in (1, 2, 3, 7, 50, 333, 10_000):
        tally = _same(text, "generate", block, monkeypatch)
        assert tally.failed == 2 and tally.python == 2


def test_many_lines_past_the_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """More handed-back lines than one engine call records, and output past its buffer."""
    monkeypatch.setattr(stream, "OUT_START", 600)
    monkeypatch.setattr(stream, "BACKS", 3)
    rng = random.Random(5)
    objs: list[dict[str, Any]] = [_plain(rng.choice([7, 11]), None) if rng.random() < 0.6
                                  else {"id": i} for i in range(300)]
    objs.append({"id": "long" * 400, **_plain(11, None)})
    for obj in objs:
        obj["id"] = obj.get("id", "") or "z"
    _same(_text(objs, rng, mutate=0), "generate")


def test_random_rnd_is_drawn_per_line() -> None:
    obj = _plain(11, None)
    del obj["request"]["rnd"]
    out, tally = _engine(((json.dumps(obj) + "\n") * 200).encode(), "generate")
    assert tally.python == 0
    blocks = [json.loads(x)["blocks"][0] for x in out.splitlines()]
    rnds = [int(b[1], 16) for b in blocks]
    assert len(set(rnds)) > 8
    decoded = run_batch([json.dumps({"token": json.loads(x)["tokens"][0], "meter": obj["meter"]})
                         for x in out.splitlines()], "decode", None, fast=False)
    assert all(json.loads(t)["rnd"] == r for (t, _), r in zip(decoded, rnds, strict=True))


def test_table_sets_come_from_the_data(tmp_path: Path) -> None:
    """STA tables are passed in from the table file: a set of our own needs no rebuild."""
    rng = random.Random(9)
    s1, s2, p = list(range(16)), list(range(16)), list(range(64))
    for t in (s1, s2, p):
        rng.shuffle(t)
    path = tmp_path / "tables.json"
    path.write_text(json.dumps({"mine": {"s1": s1, "s2": s2, "p": p}}))
    obj = _plain(7, 2)
    obj["meter"]["table_set"] = "mine"
    text = (json.dumps(obj) + "\n").encode()
    out = io.BytesIO()
    tally = stream.run_stream(io.BytesIO(text), out.write, "generate", str(path))
    want = [a for a, _ in run_batch([text], "generate", str(path), fast=False)]
    assert tally.python == 0 and out.getvalue().decode().splitlines() == want


@pytest.mark.parametrize("with_file", [True, False])
def test_table_set_by_default_name(with_file: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """An EA07 meter without `table_set` means "production": from the file when there is one,
    else Python explains (no production tables are built in)."""
    if with_file and TABLES is None:
        pytest.skip("shared vectors not available")
    monkeypatch.delenv("STS_STA_TABLES", raising=False)
    tables = TABLES if with_file else None
    rng = random.Random(3)
    objs = []
    for i in range(40):
        obj = _plain(7, rng.choice([2, 4, None]))
        del obj["meter"]["table_set"]
        obj["id"] = i
        objs.append(obj)
    text = "".join(json.dumps(o) + "\n" for o in objs).encode()
    out = io.BytesIO()
    tally = stream.run_stream(io.BytesIO(text), out.write, "generate", tables)
    want = [a for a, _ in run_batch(list(io.BytesIO(text)), "generate", tables, fast=False)]
    assert out.getvalue().decode().splitlines() == want
    assert tally.python == (0 if with_file else 40)


def test_fixed_texts_match_the_layouts() -> None:
    for sub, (kind, description) in enumerate(stream.CREDIT_TEXTS):
        layout = layout_for(0, sub)
        assert (kind, description) == (layout.name, layout.description)


def test_misty1_boxes_are_the_data_file() -> None:
    with open(stream._data_file("misty1-sboxes.json"), "rb") as f:
        boxes = json.load(f)
    assert tuple(boxes["s7"]) == misty1.S7 and tuple(boxes["s9"]) == misty1.S9


# any JSON scalar, and the near misses of each field of the plain shapes
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_FIELDS: dict[str, Any] = {
    "ea": st.sampled_from([7, 11, 9, 7.0]), "dkga": st.sampled_from([2, 4, 3, True]),
    "kt": st.sampled_from([0, 1, 2, 3]), "ti": st.integers(-1, 100), "krn": st.integers(0, 10),
    "ken": st.integers(-1, 256), "base_date": st.sampled_from([1993, 2014, 2035, 2000, None]),
    "sgc": st.sampled_from(["201457", "12345", "1234567", "20145a", 201457]),
    "pan": st.sampled_from(["600727000000000009", "600727000000000008", "000012345678901238",
                            "60072700000000000", "6007270000000000090"]),
    "table_set": st.sampled_from(["sample", "production", "x", ""]),
    "class": st.sampled_from([0, 1, 2, -0]), "subclass": st.integers(-1, 5),
    "tid": st.integers(-1, 1 << 24), "rnd": st.integers(-1, 16),
    "units": st.sampled_from(["1", "0.05", "1820162.4", "1820162.5", "01.10", "1.", "x", 5]),
    "issued_at": st.sampled_from(["2026-02-28T23:59", "2026-02-29T10:00", "2024-02-29 10:00:59",
                                  "1992-12-31T23:59:00", "2026-01-01T00:01:00+01:00", 7]),
}


@st.composite
def _near_lines(draw: Any) -> tuple[bytes, str]:
    job = draw(st.sampled_from(["generate", "decode"]))
    obj = _plain(draw(st.sampled_from([7, 11])), draw(st.sampled_from([2, 4, None])))
    meter, request = obj["meter"], obj["request"]
    for target in (meter, request):
        for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=3)):
            value = draw(st.one_of(_FIELDS[name], _SCALARS) if draw(st.booleans())
                         else _FIELDS[name])
            if name == "rnd" and type(value) is not int:
                continue  # no rnd, or null: a random RND on both sides
            target[name] = value
        if draw(st.booleans()) and target:
            del target[draw(st.sampled_from(sorted(k for k in target if k != "rnd")))]
    obj["id"] = draw(_SCALARS)
    if job == "decode":
        obj = {"id": obj["id"], "meter": meter,
               "token": draw(st.one_of(st.sampled_from(["51043465443420856213",
                                                        "73786976294838206464"]),
                                       st.integers(0, 10**20 - 1).map(lambda n: f"{n:020d}")))}
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : "), ("\t,", ":")]))
    text = json.dumps(obj, separators=separators, ensure_ascii=draw(st.booleans()))
    return (text + draw(st.sampled_from(["\n", "\r\n", ""]))).encode(), job


@pytest.mark.slow
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_near_lines())
def test_near_misses_equal_generic(case: tuple[bytes, str]) -> None:
    text, job = case
    _same(text, job)


def test_byte_mutations_equal_generic() -> None:
    """Good lines with bytes changed, cut out, put in or cut off (any byte, JSON punctuation),
    one line at a time: the engine answers or hands back, never differs."""
    rng = random.Random(11)
    good: dict[str, list[bytes]] = {"generate": [], "decode": []}
    for _ in range(30):
        ea = rng.choice([7, 11])
        obj = _plain(ea, rng.choice([2, 4, None] if ea == 7 else [4, None]))
        obj["request"]["rnd"] = rng.randrange(16)
        request = (json.dumps(obj) + "\n").encode()
        good["generate"].append(request)
        token = json.loads(_engine(request, "generate")[0])["tokens"][0]
        good["decode"].append((json.dumps({"id": 1, "token": token, "meter": obj["meter"]})
                               + "\n").encode())
    for _ in range(1500):
        job = rng.choice(["generate", "decode"])
        line = bytearray(rng.choice(good[job]))
        for _ in range(rng.randrange(1, 4)):
            op, at = rng.random(), rng.randrange(len(line) or 1)
            if op < 0.4 and line:
                line[at] = rng.randrange(256)
            elif op < 0.6:
                del line[at : at + rng.randrange(1, 5)]
            elif op < 0.8:
                line[at:at] = bytes([rng.choice(b'"{}[],:\\ 0123456789-.eE\n\r\t')])
            else:
                line = line[:at]
        if b"rnd" not in line:
            continue  # a drawn RND differs between the runs
        _same(bytes(line), job)


# --- vectors and the command ---------------------------------------------------------------


def _sts(args: list[str], data: bytes, **env: str) -> tuple[int, bytes, bytes]:
    run = subprocess.run([sys.executable, "-c", "import sys; from sts.cli import main; main()",
                          *args], input=data, capture_output=True, env={**os.environ, **env},
                         check=False)
    return run.returncode, run.stdout, run.stderr


def _vector_lines() -> list[bytes]:
    found = vectors_dir()
    if found is None:
        if IN_CI:
            pytest.fail("shared vectors missing")
        pytest.skip("shared vectors not available")
    return [p.read_bytes() for p in sorted(found.glob("*.jsonl"))]


def _same_but_drawn_rnd(on: bytes, off: bytes) -> None:
    """Equal output, but for tokens whose RND was drawn (a vector line without `rnd`): those
    lines differ in their tokens and the RND nibble of their blocks only."""
    assert len(on.splitlines()) == len(off.splitlines())
    for a, b in zip(on.splitlines(), off.splitlines(), strict=True):
        if a != b:
            x, y = json.loads(a), json.loads(b)
            assert [t[:1] + t[2:] for t in x.pop("blocks")] == [t[:1] + t[2:]
                                                                 for t in y.pop("blocks")]
            assert len(x.pop("tokens")) == len(y.pop("tokens"))
            assert x == y


@pytest.mark.slow
@pytest.mark.parametrize("job", ["generate", "decode"])
def test_every_vector_file_through_the_command(job: str) -> None:
    env = {"STS_STA_TABLES": TABLES or ""}
    for data in _vector_lines():
        plain = b"".join(_plain_form(line, job) for line in data.splitlines(keepends=True))
        for text in (data, plain):
            on = _sts([job], text, **env)
            off = _sts([job], text, STS_NATIVE="0", **env)
            assert on[0] == off[0] and on[2] == off[2]
            _same_but_drawn_rnd(on[1], off[1])


def _plain_form(line: bytes, job: str) -> bytes:
    """A vector line as a plain batch line (no `expected`, `note`, ...): the engine's shape."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    keep = ("id", "meter", "request") if job == "generate" else ("id", "meter", "token")
    plain = {k: obj[k] for k in keep if k in obj}
    if job == "decode" and "token" not in obj:
        tokens = obj.get("expected", {}).get("tokens") if isinstance(obj.get("expected"),
                                                                      dict) else None
        if tokens:
            plain["token"] = tokens[0]
    return (json.dumps(plain) + "\n").encode()


def test_plain_vectors_give_their_expected_tokens_in_c() -> None:
    _vector_lines()
    found = vectors_dir()
    assert found is not None
    lines = [json.loads(x) for x in (found / "tokens.jsonl").read_text().splitlines()]
    cases = [v for v in lines if isinstance(v.get("expected"), dict) and "tokens" in v["expected"]
             and "rnd" in v.get("request", {})]
    text = b"".join(_plain_form((json.dumps(v) + "\n").encode(), "generate") for v in cases)
    out, tally = _engine(text, "generate")
    assert tally.python < len(cases)  # the engine answers some of them itself
    for v, got in zip(cases, out.splitlines(), strict=True):
        answer = json.loads(got)
        if "tokens" in answer:
            assert answer["tokens"] == v["expected"]["tokens"], v["id"]


def test_the_command_starts_without_numpy_or_click(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(_plain(11, 4)) + "\n")
    code = ("import sys; from sts.cli import main\n"
            f"sys.argv = ['sts', 'generate', '-i', {str(src)!r}, '-o', {os.devnull!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print([m for m in ('numpy', 'click', 'sts.engine.core', 'orjson') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_command_lines_without_click(tmp_path: Path) -> None:
    from sts.cli.batch_run import quick

    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    line = json.dumps(_plain(7, 2)) + "\n" + '{"id": "bad"}\n'
    src.write_text(line)
    for args in (["generate", "-i", str(src), "-o", str(dst)],
                 ["generate", "--input", str(src), f"--output={dst}"],
                 ["--sta-tables", str(tmp_path / "none.json"), "generate", "-i", str(src),
                  "-o", str(dst), "--sta-tables", TABLES or "x"]):
        assert quick(args) == 1
        assert len(dst.read_text().splitlines()) == 2
    for args in (["generate", "--help"], ["generate", "-i"], ["generate", "-x", "1"],
                 ["generate", "-i", str(src), "-i", str(src)], ["token"], [],
                 ["generate", "-i", str(tmp_path / "missing")], ["--version"],
                 ["generate", "--sta-tables", str(tmp_path)],
                 ["--sta-tables", str(tmp_path), "generate", "--sta-tables", str(src)]):
        assert quick(args) is None, args
    # the same answers and status as through click (`-iFILE` is left to click)
    code, out, err = _sts(["generate", "-i", str(src)], b"")
    assert code == 1 and b"1 line(s) failed" in err
    assert _sts([f"-i{src}", "generate"], b"")[0] == 2  # a root option click refuses
    assert _sts(["generate", f"-i{src}"], b"") == (code, out, err)
    assert _sts(["generate", f"-i{src}"], b"", STS_NATIVE="0") == (code, out, err)


def test_ids_are_echoed_as_written_through_the_command() -> None:
    """The engine answers plain lines with integer ids itself (`-0` stays `-0`); the lines it
    hands back (floats, big numbers, NaN) get Python's answer with the id as written."""
    plain = _plain(11, 4)
    ids = ["-0", "0", "-17", "123456789012345678", "1234567890123456789", "1e400", "1.50",
           "7" * 4300, "NaN", "-Infinity"]
    echoed = [*ids[:-2], '"NaN"', '"-Infinity"']
    text = "".join(json.dumps(plain).replace('"x"', i, 1) + "\n" for i in ids).encode()
    out, tally = _engine(text, "generate")
    assert tally.python == 6  # 19 digits and more, and every non-integer
    for line, want in zip(out.decode().splitlines(), echoed, strict=True):
        assert line.startswith('{"id":' + want + ',"tokens":'), line[:60]
    for env in ({}, {"STS_NATIVE": "0"}):
        code, got, _ = _sts(["generate"], text, **env)
        assert code == 0 and got == out
