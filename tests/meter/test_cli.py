"""`sts meter ...` and `sts fleet run` through click's test runner (and `run_guarded` for exit
codes and JSON error rendering)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sts.cli import cli
from sts.cli.common import run_guarded
from tests.conftest import sta_tables_file
from tests.meter.meter_helpers import METER64, make_rig

T0 = "2024-03-01T08:00:00"


def sts(*args: str, stdin: str = "") -> dict[str, Any]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture
def state(tmp_path: Path) -> str:
    config = tmp_path / "meter.json"
    config.write_text(json.dumps({**METER64, "max_credit": "500", "tid_memory_depth": 20}))
    path = str(tmp_path / "state.json")
    out = sts("meter", "new", path, "--config", str(config), "--at", T0, "--json")
    assert out["identity"]["krn"] == 1 and out["lcd"]["text"] == "0.00 kWh"
    assert "decoder_key" not in json.dumps(out)
    return path


def test_enter_show_and_json_fields(state: str) -> None:
    rig = make_rig()
    token = rig.credit("12.5")
    out = sts("meter", "enter", state, token, "--at", "2024-03-01T08:01:00", "--json")
    assert (out["result"], out["code"], out["display"], out["amount"]) == (
        "accept", 1, "Accept", "12.5")
    assert out["relay"] == "closed" and out["time"] == "2024-03-01T08:01:00"
    again = sts("meter", "enter", state, token, "--at", "2024-03-01T08:02:00", "--json")
    assert (again["result"], again["code"], again["display"]) == ("used", 10, "Used")
    shown = sts("meter", "show", state, "--at", "2024-03-01T08:03:00", "--json")
    assert shown["registers"]["electricity"] == "12.50"
    assert shown["tid_memory"]["depth"] == 20
    saved = json.loads(Path(state).read_text())
    assert saved["key"]["decoder_key"] and "vending_key" not in json.dumps(saved)


def test_keys_load_advance_voltage_tamper_power(state: str) -> None:
    token = make_rig().credit("1")
    out = sts("meter", "keys", state, token[:10], token[10:], "#", "--at",
              "2024-03-01T08:01:00", "--json")
    assert out["result"] == "accept" and len(out["results"]) == 1
    partial = sts("meter", "keys", state, "1234", "5", "--gap", "1", "--at",
                  "2024-03-01T08:01:30", "--json")
    assert partial["lcd"]["text"] == "1234-5" and partial["lcd"]["counter"] == 5
    out = sts("meter", "load", state, "1000", "--at", "2024-03-01T08:02:00", "--json")
    timeouts = [e for e in out["events"] if e["event"] == "entry_timeout"]
    assert [e["t"] for e in timeouts] == ["2024-03-01T08:01:54"]  # 20 s after the last digit
    out = sts("meter", "advance", state, "7200", "--json")
    assert out["relay"] == "open"
    assert [e["t"] for e in out["events"] if e["event"] == "relay_open"] == [
        "2024-03-01T09:02:00"]  # 1 kWh at 1 kW
    out = sts("meter", "voltage", state, "100", "--json")
    assert out["lcd"]["powered"]
    out = sts("meter", "tamper", state, "magnetic", "--json")
    assert out["lcd"]["tamper"]
    out = sts("meter", "power", state, "off", "--json")
    assert not out["lcd"]["powered"]
    out = sts("meter", "power", state, "on", "--json")
    assert out["lcd"]["tamper"] and out["relay"] == "open"
    out = sts("meter", "flow", state, "water", "0.5", "--json")
    assert out["relay"] == "open"


def test_lockout_result_on_the_cli(state: str) -> None:
    wrong = make_rig().wrong_token()
    for n in (1, 2, 3):
        out = sts("meter", "enter", state, wrong, "--at", f"2024-03-01T08:0{n}:00", "--json")
        assert out["display"] == f"Reject-{n}"
    out = sts("meter", "enter", state, make_rig().credit("1"), "--at", "2024-03-01T08:03:04",
              "--json")
    assert (out["result"], out["code"], out["lockout_remaining"]) == ("lockout", 15, 6)


def test_time_cannot_go_backwards(state: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_guarded(cli, ["meter", "show", state, "--at", "2024-01-01T00:00:00", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["error"] == "time_backwards"


def test_new_refuses_to_overwrite(state: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "meter.json"
    code = run_guarded(cli, ["meter", "new", state, "--config", str(config), "--json"])
    assert code == 2 and json.loads(capsys.readouterr().out)["field"] == "state"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**METER64, "lockout_max": -1}))
    code = run_guarded(cli, ["meter", "new", str(tmp_path / "x.json"), "--config", str(bad),
                             "--json"])
    assert code == 2 and "lockout_max" in json.loads(capsys.readouterr().out)["field"]


def test_missing_and_corrupt_state_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_guarded(cli, ["meter", "show", str(tmp_path / "none.json"), "--json"])
    assert code == 3 and json.loads(capsys.readouterr().out)["error"] == "meter_state"


def test_human_output(state: str) -> None:
    result = CliRunner().invoke(cli, ["meter", "enter", state, make_rig().credit("2"), "--at",
                                      "2024-03-01T08:01:00"])
    assert result.exit_code == 0
    assert "Accept" in result.stdout and "+2.0 kWh" in result.stdout and "relay closed" in \
        result.stdout


TABLES = sta_tables_file()


@pytest.mark.skipif(TABLES is None, reason="shared vectors not available")
def test_production_tables_path_is_remembered(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STS_STA_TABLES", raising=False)
    config = tmp_path / "meter.json"
    config.write_text(json.dumps({"pan": "600727000000000009", "dkga": 4, "ea": 7,
                                  "table_set": "production",
                                  "vending_key": "abababababababab949494949494949401234567",
                                  "kt": 2, "sgc": "201457", "ti": 1, "krn": 1, "ken": 255,
                                  "base_date": 2014}))
    path = str(tmp_path / "s.json")
    sts("meter", "new", path, "--config", str(config), "--sta-tables", str(TABLES), "--at",
        "2014-03-01T13:00:00", "--json")
    out = sts("meter", "enter", path, "70630503470028726114", "--json")  # POS CTSA01.1
    assert (out["result"], out["amount"], out["tid"]) == ("accept", "0.1", 85740)


def test_fleet_run_over_a_directory(tmp_path: Path) -> None:
    meters = tmp_path / "meters"
    meters.mkdir()
    rigs = {}
    for n in range(5):
        obj = {**METER64, "vending_key": f"{n + 1:02d}" * 8}
        (meters / f"m{n}.json").write_text(json.dumps(obj))
        rigs[f"m{n}"] = make_rig(obj)
    lines = []
    for minute in range(3):
        for meter_id, rig in rigs.items():
            lines.append({"meter": meter_id, "token": rig.credit(
                "1", at=f"2024-02-01T10:0{minute}:00"), "at": f"2024-03-01T08:0{minute}:00"})
    lines.append({"meter": "m0", "token": lines[0]["token"], "at": "2024-03-01T09:00:00"})
    lines.append({"meter": "nope", "token": lines[0]["token"]})
    stdin = "".join(json.dumps(x) + "\n" for x in lines) + "not json\n"
    result = CliRunner().invoke(cli, ["fleet", "run", "--meters", str(meters), "--save-dir",
                                      str(tmp_path / "out"), "--no-progress", "--json"],
                                input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    outs = [json.loads(x) for x in result.stdout.splitlines()]
    assert [o["line"] for o in outs] == list(range(1, len(lines) + 2))
    assert [o["result"] for o in outs[:15]] == ["accept"] * 15
    assert outs[15]["result"] == "used" and outs[16]["error"] == "unknown_meter"
    assert outs[17]["error"] == "invalid_input"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"m{n}.json" for n in
                                                                  range(5)]
    shown = sts("meter", "show", str(tmp_path / "out" / "m3.json"), "--json")
    assert shown["registers"]["electricity"] == "3.00"
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary["lines"] == 18 and summary["used_meters"] == 5


def test_keys_as_docs_show_them_with_spaces(state: str) -> None:
    """docs/meter.md: `sts meter keys STATE '1234 5678 #'` (issue 7: was `unknown key ' '`)."""
    token = make_rig().credit("2")
    grouped = " ".join(token[i:i + 4] for i in range(0, 20, 4))
    out = sts("meter", "keys", state, f"{grouped} #", "--at", "2024-03-01T08:01:00", "--json")
    assert out["result"] == "accept" and out["amount"] == "2.0"
    dashed = sts("meter", "keys", state, "1234-5678", "back", "--at", "2024-03-01T08:02:00",
                 "--json")
    assert dashed["entry"] == "1234567"


def test_options_after_or_before_the_subcommand(tmp_path: Path) -> None:
    """--sta-tables works on the command and on `sts` itself; --json on the command."""
    tables = sta_tables_file()
    if tables is None:
        pytest.skip("shared vectors not available")
    line = json.dumps({"id": "p", "token": "70630503470028726114",
                       "meter": {"ea": 7, "table_set": "production",
                                 "decoder_key": "87f3ecbb2e46b48f"}}) + "\n"
    for args in (["decode", "--sta-tables", str(tables)], ["--sta-tables", str(tables), "decode"]):
        result = CliRunner().invoke(cli, args, input=line, standalone_mode=False)
        assert result.return_value == 0, (args, result.output)
        assert json.loads(result.stdout)["units"] == "0.1"
