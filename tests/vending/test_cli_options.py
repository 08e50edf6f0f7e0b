"""The vending CLI as a newcomer types it: shared options before or after the subcommand, and
`--json` on every command (data as JSON, errors as JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sts.cli import cli
from sts.cli.common import run_guarded
from sts.cli.vending import admin, audit, campaign, serve

SHARED = {"db_url", "kek_file", "sta_tables", "as_json"}


@dataclass
class Ran:
    output: str
    stderr: str


def sts(args: list[str], code: int = 0, **env: str) -> Ran:
    """`sts ARGS` as the installed command runs it (errors mapped to codes and messages)."""
    runner = CliRunner()
    with runner.isolation(env=env or None) as (out, err, _):
        status = run_guarded(cli, args)
        ran = Ran(out.getvalue().decode(), err.getvalue().decode())
    assert status == code, (ran.output, ran.stderr)
    return ran


@pytest.mark.parametrize("group", [admin, campaign, audit, serve])
def test_every_command_takes_the_shared_options_and_json(group: click.Command) -> None:
    def walk(cmd: click.Command, where: str) -> None:
        names = {p.name for p in cmd.params}
        assert names >= SHARED, f"{where} lacks {SHARED - names}"
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{where} {name}")

    walk(group, group.name or "")


@pytest.mark.slow
def test_db_before_or_after_the_subcommand(db_url: str, kek_file: str, tmp_path: Path) -> None:
    after = json.loads(sts(["admin", "demo", "--db", db_url, "--kek-file", kek_file,
                            "--json"]).output)
    assert len(after["meters"]) == 5
    before = sts(["admin", "--db", db_url, "--kek-file", kek_file, "--json", "key", "list"])
    middle = sts(["admin", "key", "--db", db_url, "--kek-file", kek_file, "list", "--json"])
    last = sts(["admin", "key", "list", "--json", "--db", db_url, "--kek-file", kek_file])
    assert before.output == middle.output == last.output
    assert json.loads(last.output.splitlines()[0])["sgc"] == after["sgc"]
    # the same database both ways: a second demo is refused whichever way it is named
    again = sts(["admin", "--db", db_url, "--kek-file", kek_file, "demo", "--json"], code=6)
    assert json.loads(again.output)["error"] == "ALREADY_EXISTS"
    for args in (["audit", "verify", "--db", db_url, "--json"],
                 ["audit", "--db", db_url, "verify", "--json"],
                 ["audit", "--json", "--db", db_url, "verify"]):
        assert json.loads(sts(args).output)["ok"] is True


@pytest.mark.slow
def test_nearest_option_wins_and_environment(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    sts(["admin", "--db", str(a), "demo", "--db", str(b)])
    assert b.exists() and not a.exists()
    env_db = tmp_path / "env.sqlite3"
    sts(["admin", "demo", "--json"], STS_DB_URL=str(env_db))
    assert env_db.exists()
    keys = sts(["admin", "key", "list", "--json"], STS_DB_URL=str(env_db)).output
    assert json.loads(keys)["krn"] == 1


def test_json_output_of_every_data_command(db_url: str, kek_file: str, tmp_path: Path) -> None:
    db = ["--db", db_url, "--kek-file", kek_file]
    info = json.loads(sts(["admin", "demo", *db, "--json"]).output)
    sgc = info["sgc"]
    human = sts(["admin", "key", "list", *db]).output
    assert human.startswith("SGC") and "generated" in human
    outs = [
        sts(["admin", "utility", "U9", *db, "--json"]),
        sts(["admin", "key", "add", sgc, "2", "--not-current", *db, "--json"]),
        sts(["admin", "vendor", "topup", info["vendor"], "5", *db, "--json"]),
        sts(["admin", "meter", "block", info["meters"][0], "--reason", "audit", *db, "--json"]),
        sts(["admin", "meter", "unblock", info["meters"][0], *db, "--json"]),
        sts(["admin", "apikey", "add", "auditor", *db, "--json"]),
        sts(["campaign", "create", "c1", "--sgc", sgc, "--to-krn", "2", *db, "--json"]),
    ]
    for out in outs:
        assert isinstance(json.loads(out.output), dict), out.output
    assert json.loads(outs[1].output) == {"sgc": sgc, "krn": 2, "origin": "generated",
                                          "current": False}
    assert json.loads(outs[2].output)["float_balance"] == "1000005.00"
    run = sts(["campaign", "run", "c1", "--json", "--no-progress", *db]).output.splitlines()
    assert len(run) == 5 and all(json.loads(line)["status"] == "done" for line in run)
    out_file = tmp_path / "c1.csv"
    summary = sts(["campaign", "run", "c1", "--out", str(out_file), "--format", "csv",
                   "--no-progress", *db, "--json"]).output
    assert json.loads(summary)["done"] == 5 and len(out_file.read_text().splitlines()) == 6
    status = sts(["campaign", "--json", *db, "status", "c1"]).output
    assert json.loads(status) == {"campaign": "c1", "pending": 0, "done": 5, "failed": 0,
                                  "skipped": 0}
    assert sts(["campaign", "status", "c1", *db]).output.startswith("campaign c1: pending 0")


def test_errors_are_json_with_json(tmp_path: Path) -> None:
    out = sts(["admin", "key", "current", "999999", "7", "--db", str(tmp_path / "e.sqlite3"),
               "--json"], code=6).output
    err = json.loads(out)
    assert set(err) >= {"error", "message"}


def test_demo_output_is_pasteable(tmp_path: Path) -> None:
    out = sts(["admin", "demo", "--db", str(tmp_path / "d.sqlite3")]).output
    exports = dict(line.removeprefix("export ").split("#")[0].strip().split("=", 1)
                   for line in out.splitlines() if line.startswith("export "))
    assert set(exports) == {"VENDOR_KEY", "SUPERVISOR_KEY", "ENGINEER_KEY", "ADMIN_KEY",
                            "AUDITOR_KEY", "METER"}
    assert exports["VENDOR_KEY"].startswith("stsk_") and len(exports["METER"]) == 18
    assert "# Electrum (HTTP Basic): demo-electrum / " in out
