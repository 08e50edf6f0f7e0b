"""Batch contract: one output line per input line, whatever the line holds (issue 7).

Every answer is strict JSON with the line's id echoed; an error has one shape
{"id", "error", "message", "field"?, "line"} and names the real problem, never "internal".
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sts.engine import TokenRequest, decode, generate
from sts.engine.batch import run_batch
from sts.engine.wire import meter_from_json
from sts.errors import InputError, TokenFormatError

METER = {"pan": "600727000000000009", "dkga": 4, "ea": 7, "table_set": "sample",
         "vending_key": "abababababababab949494949494949401234567", "kt": 2, "sgc": "201457",
         "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}
KEY_ONLY = {"ea": 7, "table_set": "sample", "decoder_key": "87f3ecbb2e46b48f", "base_date": 2014}
REQUEST = {"class": 0, "subclass": 0, "issued_at": "2020-01-01T10:00", "units": "10.5", "rnd": 3}
ERROR_KEYS = {"id", "error", "message", "field", "line", "expected_error"}


def _refuse(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name} in output")


def _strict(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse)


_CONSTANTS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _as_echoed(value: Any) -> Any:
    """What strict JSON can echo: NaN and infinities come back as their names, as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return _CONSTANTS[repr(value)]
    if isinstance(value, list):
        return [_as_echoed(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_echoed(v) for k, v in value.items()}
    return value


def _same_id(sent: Any, got: Any) -> bool:
    return bool(_as_echoed(sent) == got)


def check_answers(lines: list[str], job: str) -> list[dict[str, Any]]:
    """Run the batch; assert the contract line by line; return the answers."""
    answers = [(_strict(text), ok) for text, ok in run_batch(lines, job, None)]
    inputs = [x for x in lines if x.strip()]
    assert len(answers) == len(inputs)
    for raw, (out, ok) in zip(inputs, answers, strict=True):
        assert isinstance(out, dict) and "id" in out
        if ok:
            assert "error" not in out
        else:
            assert set(out) <= ERROR_KEYS and {"id", "error", "message", "line"} <= set(out)
            assert out["error"] != "internal", (raw, out)
            assert isinstance(out["message"], str) and out["message"]
        try:
            sent = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(sent, dict):
            assert _same_id(sent.get("id"), out["id"]), (sent.get("id"), out["id"])
    return [out for out, _ in answers]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from([10**30, -(10**25), 2**66, 2**64, -1, 0, 255, 1e999, "", "1", "٥", "０",
                       "2020-01-01T10:00Z", "production", "sample", "0" * 20, "7" * 20]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


@st.composite
def spoiled(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with some fields replaced by arbitrary JSON values or removed."""
    out = dict(base)
    for name in draw(st.lists(st.sampled_from(sorted(base)), max_size=3, unique=True)):
        if draw(st.booleans()):
            out[name] = draw(json_values)
        else:
            out.pop(name)
    return out


@st.composite
def generate_lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return json.dumps(draw(json_values))
    if kind == 1:
        return draw(st.text(max_size=40)).replace("\n", " ").replace("\r", " ")
    meter = draw(spoiled(draw(st.sampled_from([METER, KEY_ONLY]))))
    request = draw(spoiled(REQUEST))
    line: dict[str, Any] = {"id": draw(json_values), "meter": meter, "request": request}
    if draw(st.booleans()):
        line = draw(spoiled(line))
    return json.dumps(line)


@st.composite
def decode_lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return json.dumps(draw(json_values))
    token = draw(st.sampled_from(["70630503470028726114", "56493153725450313471"]) | json_values)
    meter = draw(spoiled(draw(st.sampled_from([METER, KEY_ONLY]))))
    line = draw(spoiled({"id": draw(json_values), "token": token, "meter": meter}))
    return json.dumps(line)


_SETTINGS = settings(max_examples=100,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(st.lists(generate_lines(), min_size=1, max_size=6))
def test_generate_answers_every_line(lines: list[str]) -> None:
    check_answers(lines, "generate")


@_SETTINGS
@given(st.lists(decode_lines(), min_size=1, max_size=6))
def test_decode_answers_every_line(lines: list[str]) -> None:
    check_answers(lines, "decode")


HUGE = "9" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("job,line,code,field", [
    ("decode", '{"id":"b","token":70630503470028726114}', "token_format", "token"),
    ("decode", '{"id":"b","token":null}', "token_format", "token"),
    ("decode", '{"id":"b","token":[1]}', "token_format", "token"),
    ("decode", '{"id":"b","token":{"a":1}}', "token_format", "token"),
    ("decode", '{"id":"b","token":true}', "token_format", "token"),
    ("decode", '{"id":"b","token":-5}', "token_format", "token"),
    ("decode", '{"id":"b","token":' + HUGE + "}", "token_format", "token"),
    ("decode", '{"id":"b","token":"73786976294838206464"}', "token_format", "token"),
    ("decode", "null", "invalid_input", "line"),
    ("decode", "{", "invalid_input", "line"),
    ("decode", DEEP, "invalid_input", "line"),
    ("generate", '{"id":"b","request":{"class":0,"subclass":0,"units":"1","tid":5}}',
     "invalid_input", "meter"),
    ("generate", '{"id":"b","request":{"class":2,"subclass":1,"register":1,"tid":5}}',
     "invalid_input", "meter"),
    ("generate", '{"id":"b","meter":' + json.dumps(METER) + ',"request":{"class":0,'
     '"subclass":0,"units":' + HUGE + ',"tid":5}}', "invalid_amount", "units"),
    ("generate", '{"id":"b","meter":' + json.dumps(METER) + ',"request":{"class":0,'
     '"subclass":0,"units":"10","tid":' + HUGE + "}}", "invalid_input", "request.tid"),
    ("generate", '{"id":"b","meter":' + json.dumps(METER) + ',"request":{"class":2,'
     '"subclass":1,"register":99,"tid":5}}', "invalid_input", "register"),
])
def test_named_bad_lines(job: str, line: str, code: str, field: str) -> None:
    lines = [line, json.dumps({"id": "after", "request": {"class": 1, "subclass": 0,
                                                           "control": 1, "mfr_code": "00"}})]
    if job == "decode":
        lines[1] = json.dumps({"id": "after", "token": "56493153725450313471"})
    first, after = check_answers(lines, job)
    assert (first["error"], first.get("field")) == (code, field), first
    if line.startswith('{"id"'):
        assert first["id"] == "b"
    assert "error" not in after and after["id"] == "after"
    if code == "token_format" and "null" not in line and HUGE not in line and '"7378' not in line:
        assert "got a" in first["message"]  # names the type it got


def test_not_utf8_is_one_failed_line() -> None:
    lines = [b'{"id":"x","token":"\xff\xfe"}\n', b'{"id":"y","token":"56493153725450313471"}\n']
    answers = [json.loads(text) for text, _ in run_batch(lines, "decode", None)]
    assert answers[0]["error"] == "invalid_input" and "UTF-8" in answers[0]["message"]
    assert answers[1]["id"] == "y" and "error" not in answers[1]


def test_a_bug_on_one_line_does_not_lose_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from sts.engine import batch, jobs

    real = jobs.decode_obj

    def flaky(obj: dict[str, Any], tables_file: str | None) -> dict[str, Any]:
        if obj.get("id") == "boom":
            raise ZeroDivisionError("a bug")
        return real(obj, tables_file)

    monkeypatch.setattr(batch, "decode_obj", flaky)
    lines = [json.dumps({"id": i, "token": "56493153725450313471"}) for i in ("a", "boom", "c")]
    answers = [json.loads(text) for text, _ in run_batch(lines, "decode", None, fast=False)]
    assert [a["id"] for a in answers] == ["a", "boom", "c"]
    assert answers[1]["error"] == "internal" and answers[1]["line"] == 2
    assert "error" not in answers[0] and "error" not in answers[2]


def test_python_api_refuses_wrong_types() -> None:
    meter = meter_from_json(METER)
    for token in (True, 2**66, -1, 1.5, None, [1]):
        with pytest.raises(TokenFormatError):
            decode(token, meter)  # type: ignore[arg-type]
    with pytest.raises(TokenFormatError) as info:
        decode("73786976294838206464", meter)  # 2^66: a format error, not a CRC error
    assert "66-bit" in info.value.message
    with pytest.raises(InputError) as err:
        generate(None, TokenRequest(0, 0, {"units": "1"}, tid=5))
    assert err.value.field == "meter"


def test_cli_answers_every_line_and_exit_codes(tmp_path: Path) -> None:
    """The real command, as a script would run it: 5 lines in, 5 JSON lines out, exit 1."""
    probe = "\n".join([
        '{"id":"a","token":70630503470028726114}', "null", '{"id":"c","token":[1]}', "{",
        '{"id":"e","token":"56493153725450313471"}',
    ]) + "\n"
    sts = Path(sys.executable).with_name("sts")
    done = subprocess.run([str(sts), "decode"], input=probe, capture_output=True, text=True,
                          timeout=60, check=False)
    out = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(out) == 5 and done.returncode == 1
    assert [x.get("error") for x in out] == ["token_format", "invalid_input", "token_format",
                                             "invalid_input", None]
    assert "4 line(s) failed" in done.stderr and "Traceback" not in done.stderr
    ok = subprocess.run([str(sts), "decode"], input=probe.splitlines()[-1] + "\n",
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0


def test_python_api_generate_refuses_wrong_types() -> None:
    meter = meter_from_json(METER)
    bad: list[Any] = [
        TokenRequest(True, 0, {"units": "1"}, tid=5),
        TokenRequest(0, "0", {"units": "1"}, tid=5),  # type: ignore[arg-type]
        TokenRequest(0, 0, ["units"], tid=5),  # type: ignore[arg-type]
        TokenRequest(0, 0, {"units": "1"}, issued_at="2020-01-01T00:00"),  # type: ignore[arg-type]
        TokenRequest(0, 0, {"units": 10.05}, tid=5),
        TokenRequest(0, 0, {"units": "1"}, tid=True),
        TokenRequest(0, 0, {"units": "1"}, tid=2**24),
        TokenRequest(0, 0, {"units": "1"}, tid=5, rnd=16),
        {"class": 0},
    ]
    for request in bad:
        with pytest.raises(InputError):
            generate(meter, request)
    with pytest.raises(InputError):
        generate("meter", TokenRequest(0, 0, {"units": "1"}, tid=5))  # type: ignore[arg-type]


def test_long_integers_are_echoed_and_named_as_written() -> None:
    """orjson reads integers beyond 64 bits as floats: such lines are read again exactly."""
    lines = ['{"id": 70630503470028726115, "token": 70630503470028726114}']
    out, = check_answers(lines, "decode")
    assert out["id"] == 70630503470028726115
    assert "got a number (70630503470028726114)" in out["message"]


# an id as written -> as echoed: numbers keep their text; NaN and the infinities, which strict
# JSON cannot hold, come back as strings of their names
_ID_TEXTS = {
    "1e400": "1e400", "-1E+400": "-1E+400", "1.5e-400": "1.5e-400", "1.50": "1.50", "1E5": "1E5",
    "-0": "-0", "-0.0": "-0.0", "0.1000000000000000000001": "0.1000000000000000000001",
    "12345678901234567890123": "12345678901234567890123", "7" * 4300: "7" * 4300,
    "-" + "9" * 5000: "-" + "9" * 5000, "Infinity": '"Infinity"', "-Infinity": '"-Infinity"',
    "NaN": '"NaN"', '[1.50, {"a": -0, "b": [NaN, "x"]}]': '[1.50,{"a":-0,"b":["NaN","x"]}]',
    "17": "17", '"1e400"': '"1e400"',
}
_ID_LINES = {
    "generate": ['{"id": ID, "request": {"class": 1, "subclass": 0, "control": 1, "mfr_code": "00"}}',
                 '{"id": ID, "request": {"class": 1}}',
                 '{"meter": ' + json.dumps(KEY_ONLY) + ', "id": ID, "request": '
                 + json.dumps(REQUEST) + "}"],
    "decode": ['{"id": ID, "token": "56493153725450313471"}', '{"token": "5649315372545031347", "id": ID}'],
}


@pytest.mark.parametrize("job", ["generate", "decode"])
def test_ids_are_echoed_as_written(job: str) -> None:
    """A number keeps its digits: 1e400 is not "inf", 4,300 digits are not a description."""
    for written, echoed in _ID_TEXTS.items():
        for shape in _ID_LINES[job]:
            line = shape.replace("ID", written)
            for fast in (True, False):
                (text, _), = run_batch([line], job, None, fast=fast)
                assert text.startswith('{"id":' + echoed + ","), (line[:80], text[:80])
                json.loads(text, parse_int=str, parse_float=str, parse_constant=_refuse)
