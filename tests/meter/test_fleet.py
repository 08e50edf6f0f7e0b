"""The fleet runner: many meters, interleaved input, results in input order, and the same
answers as meters run one by one."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import parse_time
from sts.meter.fleet import Fleet
from sts.meter.store import save_state
from tests.meter.meter_helpers import METER64, make_rig

AT = parse_time("2024-03-01T08:00:00")


def configs(count: int) -> list[dict[str, object]]:
    return [{"id": f"m{n}", **METER64, "vending_key": f"{n:016x}", "tid_memory_depth": 4}
            for n in range(count)]


def test_fleet_matches_meters_run_one_by_one(tmp_path: Path) -> None:
    defs = configs(40)
    source = tmp_path / "meters.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in defs))
    rigs = {str(d["id"]): make_rig({k: v for k, v in d.items()
                                    if k not in ("id", "tid_memory_depth")}) for d in defs}
    rng = random.Random(3)
    lines = []
    for n in range(600):
        meter_id = f"m{rng.randrange(40)}"
        rig = rigs[meter_id]
        choice = rng.random()
        if choice < 0.7:
            token = rig.credit("1", at=f"2024-02-{1 + rng.randrange(20):02d}T10:"
                                       f"{rng.randrange(60):02d}:00")
        elif choice < 0.85:
            token = rig.wrong_token()
        else:
            token = f"{rng.randrange(10**20):020d}"
        lines.append({"meter": meter_id, "token": token,
                      "at": f"2024-03-01T08:{n // 60:02d}:{n % 60:02d}"})
    fleet = Fleet.from_path(source)
    outs = [json.loads(x) for x in fleet.run([json.dumps(x) for x in lines], AT)]
    assert [o["line"] for o in outs] == list(range(1, 601))
    solo: dict[str, Meter] = {}
    clocks: dict[str, FakeClock] = {}
    for line, out in zip(lines, outs, strict=True):
        meter_id = line["meter"]
        at = parse_time(line["at"])
        if meter_id not in solo:
            clocks[meter_id] = FakeClock(at)
            config = next(d for d in defs if d["id"] == meter_id)
            solo[meter_id] = Meter.create(parse_config(config), clocks[meter_id])
        clocks[meter_id].set(at)
        expected = solo[meter_id].enter(line["token"]).as_dict()
        assert out == {"meter": meter_id, "line": out["line"], **expected}
    results = {o["result"] for o in outs}
    assert {"accept", "used", "reject", "lockout"} <= results
    assert len(fleet.meters) == 40 and not fleet.pending


def test_fleet_directory_with_state_files_and_configs(tmp_path: Path) -> None:
    rig = make_rig()
    rig.meter.enter(rig.credit("5"))
    save_state(tmp_path / "old.json", rig.meter.state)
    (tmp_path / "fresh.json").write_text(json.dumps(METER64))
    fleet = Fleet.from_path(tmp_path)
    assert len(fleet) == 2
    token = rig.credit("5")
    out = [json.loads(x) for x in fleet.run([
        json.dumps({"meter": "old", "token": token}),
        json.dumps({"meter": "fresh", "token": token}),
        json.dumps({"meter": "fresh", "token": token, "at": "2024-01-01T00:00:00"}),
        json.dumps({"meter": "fresh"}),
        "[]",
    ], AT)]
    assert [o.get("result") for o in out[:2]] == ["used", "accept"]
    assert out[2]["error"] == "time_backwards"
    assert out[3]["error"] == "token_format" and "got null" in out[3]["message"]
    assert out[4]["error"] == "invalid_input"
    saved = fleet.save(tmp_path / "saved")
    assert saved == 2


def test_meters_are_built_lazily(tmp_path: Path) -> None:
    source = tmp_path / "meters.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in configs(500)))
    fleet = Fleet.from_path(source)
    assert len(fleet) == 500 and not fleet.meters
    list(fleet.run([json.dumps({"meter": "m7", "token": "0" * 20})], AT))
    assert list(fleet.meters) == ["m7"]


def test_key_change_inside_one_chunk_uses_the_new_key(tmp_path: Path) -> None:
    rig = make_rig()
    request = {"class": 2, "subclass": 3, "key_change": {
        "new_meter": {"krn": 2, "kt": 2, "ti": 9}, "ro": 0, "ken": 255},
        "then": {"class": 0, "subclass": 0, "issued_at": "2024-02-03T10:00:00", "rnd": 2,
                 "units": "4"}}
    kct1, kct2, new_credit = rig.token(request)
    old_credit = rig.credit("1", at="2024-02-03T11:00:00")
    fleet = Fleet()
    fleet.add_config("a", METER64)
    lines = [json.dumps({"meter": "a", "token": t})
             for t in (new_credit, kct1, kct2, new_credit, old_credit)]
    results = [json.loads(x)["result"] for x in fleet.run(lines, AT)]
    assert results == ["reject", "key_change_1", "accept", "accept", "reject"]
    assert fleet.meters["a"].state.memory.key.hints == {}  # nothing left behind


def test_prepared_cipher_matches_the_engine() -> None:
    from sts.engine import MeterKey

    rig = make_rig()
    own = rig.meter.state.memory.key
    plain = MeterKey(ea=7, decoder_key=own.decoder_key, table_set=own.table_set)
    rng = random.Random(9)
    for _ in range(200):
        block = rng.getrandbits(64)
        assert own.decrypt(block) == plain.decrypt(block)


def test_every_line_gets_its_answer_whatever_it_holds(tmp_path: Path) -> None:
    """Issue 7: junk lines, odd types, huge numbers and a bug on one line lose nothing."""
    rig = make_rig()
    (tmp_path / "m.json").write_text(json.dumps(METER64))
    fleet = Fleet.from_path(tmp_path)
    token = rig.credit("5")
    raw: list[str | bytes] = [
        json.dumps({"meter": "m", "token": 70630503470028726114}),
        "null",
        "{",
        '{"meter": "m", "token": ' + "9" * 5000 + "}",
        "[" * 50_000 + "]" * 50_000,
        b'{"meter": "m", "token": "\xff"}',
        json.dumps({"meter": ["m"], "token": token}),
        json.dumps({"meter": "m", "token": token, "at": 5}),
        json.dumps({"meter": "boom", "token": token}),
        json.dumps({"meter": "m", "token": token}),
    ]
    real = fleet.process

    def flaky(obj: object, default_at: float) -> dict[str, object]:
        if isinstance(obj, dict) and obj.get("meter") == "boom":
            raise ZeroDivisionError("a bug")
        return real(obj, default_at)

    fleet.process = flaky  # type: ignore[method-assign]
    out = [json.loads(x) for x in fleet.run(raw, AT)]
    assert [o["line"] for o in out] == list(range(1, 11))
    assert [o.get("error") for o in out] == [
        "token_format", "invalid_input", "invalid_input", "token_format", "invalid_input",
        "invalid_input", "invalid_input", "invalid_input", "internal", None]
    assert "got a number (70630503470028726114)" in out[0]["message"]
    assert out[9]["result"] == "accept"
    assert fleet.failed == 9


def test_fleet_cli_exit_status(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sts.cli import cli

    rig = make_rig()
    (tmp_path / "m.json").write_text(json.dumps(METER64))
    good = json.dumps({"meter": "m", "token": rig.credit("5")}) + "\n"
    args = ["fleet", "run", "--meters", str(tmp_path), "--at", "2024-03-01T08:00:00"]
    runner = CliRunner()
    ok = runner.invoke(cli, args, input=good, standalone_mode=False)
    assert ok.return_value == 0, ok.output
    bad = runner.invoke(cli, [*args, "--input", "-"], input=good + "null\n",
                        standalone_mode=False)
    assert bad.return_value == 1 and len(bad.stdout.splitlines()) == 2
    assert "1 line(s) failed" in bad.stderr
