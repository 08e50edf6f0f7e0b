"""The CLI: batch commands over the vectors, error lines, exit codes, human commands."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from sts.cli import cli
from sts.cli.common import run_guarded
from tests.conftest import load_vectors, sta_tables_file

TABLES = sta_tables_file()
needs_tables = pytest.mark.skipif(TABLES is None, reason="shared vectors not available")
DEMO_ARGS = ["--pan", "600727000000000009", "--vending-key",
             "abababababababab949494949494949401234567", "--sgc", "201457",
             "--table-set", "sample"]


def run_cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, args, input=stdin, standalone_mode=False, catch_exceptions=True)
    code = result.return_value if isinstance(result.return_value, int) else result.exit_code
    return code, result.stdout, result.stderr


@needs_tables
def test_generate_reproduces_every_token_vector() -> None:
    vectors = load_vectors("token")
    stdin = "".join(json.dumps(v) + "\n" for v in vectors)
    code, out, _ = run_cli(["generate", "--sta-tables", str(TABLES)], stdin)
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["id"] for x in lines] == [v["id"] for v in vectors]
    for v, got in zip(vectors, lines, strict=True):
        want = v["expected"]
        if "error" in want:
            assert got["error"] == want["error"], v["id"]
            assert got["message"]
            continue
        for w, g in zip(want["tokens"], got["tokens"], strict=True):
            assert w is None or w == g, v["id"]
        for w, g in zip(want["blocks"], got["blocks"], strict=True):
            assert w is None or w == g, v["id"]
        assert got.get("tid") == want.get("tid"), v["id"]
    assert code == (1 if any("error" in v["expected"] for v in vectors) else 0)


@needs_tables
def test_decode_batch_reads_every_single_token_vector() -> None:
    cases = [v for v in load_vectors("token")
             if "tokens" in v["expected"] and "key_change" not in v["request"]]
    stdin = "".join(json.dumps({"id": v["id"], "token": v["expected"]["tokens"][0],
                                **({"meter": v["meter"]} if v.get("meter") else {})}) + "\n"
                    for v in cases)
    code, out, _ = run_cli(["decode", "--sta-tables", str(TABLES)], stdin)
    assert code == 0
    for v, line in zip(cases, out.splitlines(), strict=True):
        got = json.loads(line)
        assert got["id"] == v["id"]
        assert got["block"] == v["expected"]["blocks"][0]
        assert (got["class"], got["subclass"]) == (v["request"]["class"],
                                                   v["request"]["subclass"])
        if "tid" in v["expected"]:
            assert got["tid"] == v["expected"]["tid"]


def test_batch_bad_lines_do_not_stop_the_run() -> None:
    good = {"id": "ok", "request": {"class": 1, "subclass": 0, "control": 1, "mfr_code": "00"}}
    stdin = "\n".join([
        "{not json",
        "[1, 2]",
        json.dumps({"id": "no-request"}),
        json.dumps({"id": "bad-pan", "meter": {"pan": "1", "ea": 7, "dkga": 4, "table_set": "sample",
                                                "vending_key": "ab" * 20},
                    "request": {"class": 0, "subclass": 0, "units": "1"}}),
        "",
        json.dumps(good),
    ]) + "\n"
    code, out, err = run_cli(["generate"], stdin)
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 1 and "4 line(s) failed" in err
    assert [x.get("error") for x in lines] == ["invalid_input", "invalid_input", "invalid_input",
                                               "invalid_pan", None]
    assert lines[2]["id"] == "no-request" and lines[3]["field"] == "meter.pan"
    assert "line 1" in lines[0]["message"]
    assert lines[4]["id"] == "ok" and len(lines[4]["tokens"]) == 1
    assert len(lines[4]["tokens"][0]) == 20 and lines[4]["tokens"][0].isdigit()


def test_human_commands_and_exit_codes(capsys: Any) -> None:
    assert run_guarded(cli, ["token", "credit", *DEMO_ARGS, "--units", "25.6",
                             "--at", "2020-05-01T10:00", "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    token = issued["tokens"][0]
    assert run_guarded(cli, ["token", "decode", token, *DEMO_ARGS, "--json"]) == 0
    decoded = json.loads(capsys.readouterr().out)
    assert decoded["units"] == "25.6" and decoded["tid"] == issued["tid"]
    assert decoded["issued_at"] == "2020-05-01T10:00:00"
    # grouped human output
    assert run_guarded(cli, ["token", "test"]) == 0
    assert "5649 3153 7254 5031 3471" in capsys.readouterr().out
    # a bad token: exit 2, one line, no traceback
    assert run_guarded(cli, ["token", "decode", "12345", *DEMO_ARGS]) == 2
    err = capsys.readouterr().err
    assert "token_format" in err and "Traceback" not in err
    # another meter's key: the meter would reject it (exit 5)
    other = [a if a != "600727000000000009" else "600727111111111153" for a in DEMO_ARGS]
    assert run_guarded(cli, ["token", "decode", token, *other, "--json"]) == 5
    assert json.loads(capsys.readouterr().out)["error"] in ("crc", "function")
    assert run_guarded(cli, ["pan", "check", "600727000000000008"]) == 2
    assert "invalid_meter_number" in capsys.readouterr().err
    assert run_guarded(cli, ["pan", "check", "1234 5678 903", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pan"] == "600727123456789030"
    # the number printed on the meter names the meter for token commands too
    drn_args = [a if a != "600727000000000009" else "00000000000" for a in DEMO_ARGS]
    assert run_guarded(cli, ["key", "derive", *drn_args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decoder_key"] == "87f3ecbb2e46b48f"


def test_keychange_and_mgmt_commands(capsys: Any) -> None:
    assert run_guarded(cli, ["token", "keychange", *DEMO_ARGS, "--new-krn", "2",
                             "--new-base-date", "2035", "--rollover", "--then-units", "5",
                             "--at", "2035-02-01T00:00", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["tokens"]) == 3 and out["tid"] == 31 * 24 * 60
    assert run_guarded(cli, ["token", "mgmt", "power-limit", *DEMO_ARGS, "--mpl-watts", "5000",
                             "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["descriptions"] == ["set maximum power limit"]
    assert run_guarded(cli, ["key", "derive", *DEMO_ARGS, "--json"]) == 0
    derived = capsys.readouterr().out
    assert json.loads(derived)["decoder_key"] == "87f3ecbb2e46b48f"
    assert "abababab" not in derived


def test_demo_runs(capsys: Any) -> None:
    assert run_guarded(cli, ["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [len(s["tokens"]) for s in report["steps"]] == [1, 3, 1, 1]
    assert report["steps"][0]["decoded"][0]["units"] == "25.6"


def test_cli_startup_imports_stay_light() -> None:
    code = (
        "import sys; from sts.cli import main\n"
        "sys.argv=['sts','token','decode','56493153725450313471','--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy=[m for m in ('numpy','fastapi','sqlalchemy','rich','pydantic','uvicorn') "
        "if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_time_zone_option_converts_offsets_and_never_drops_them(capsys: Any) -> None:
    base = ["token", "credit", *DEMO_ARGS, "--units", "1", "--rnd", "1", "--json"]
    assert run_guarded(cli, [*base, "--at", "2026-05-01T12:00"]) == 0
    local = json.loads(capsys.readouterr().out)["tid"]
    assert run_guarded(cli, [*base, "--at", "2026-05-01T10:00Z"]) == 2
    assert "no vending time zone is configured" in capsys.readouterr().out  # --json: stdout
    assert run_guarded(cli, [*base, "--at", "2026-05-01T10:00Z",
                             "--time-zone", "Africa/Johannesburg"]) == 0
    assert json.loads(capsys.readouterr().out)["tid"] == local
    assert run_guarded(cli, [*base, "--at", "2026-05-01T12:00", "--time-zone", "Mars/Base"]) == 2
    assert "time_zone" in capsys.readouterr().out


def test_cli_amounts_follow_the_one_rule(capsys: Any) -> None:
    for units in ("1_000", " 50 ", "5e1", "\uff15\uff10"):
        assert run_guarded(cli, ["token", "credit", *DEMO_ARGS, "--units", units]) == 2
        assert "invalid_amount" in capsys.readouterr().err


def test_a_crash_of_the_tool_exits_70(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """1 means "some lines failed"; a crash of the whole tool is a different status."""
    from sts.engine import stream

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the tool itself broke")

    monkeypatch.setattr(stream, "run_stream", broken)
    monkeypatch.delenv("STS_DEBUG", raising=False)
    assert run_guarded(cli, ["decode", "-i", "/dev/null"]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err
