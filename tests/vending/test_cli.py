"""The CLI faces: admin demo, admin registry commands, campaigns (CSV/JSONL), audit verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from sts.cli.vending import admin, audit, campaign
from sts.vending.registry.admin import demo_pans
from sts.vending.storage.database import normalise_url


def run(cmd: Any, args: list[str]) -> Any:
    result = CliRunner().invoke(cmd, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_admin_demo_json(db_url: str, kek_file: str) -> None:
    out = run(admin, ["--db", db_url, "--kek-file", kek_file, "demo", "--json"])
    info = json.loads(out.output)
    assert set(info["api_keys"]) == {"vendor", "supervisor", "engineer", "admin", "auditor"}
    assert len(info["meters"]) == 5 and info["table_set"] == "sample"
    again = CliRunner().invoke(admin, ["--db", db_url, "--kek-file", kek_file, "demo", "--json"])
    assert again.exit_code != 0


def test_admin_demo_production_tables(db_url: str, kek_file: str, tables_file: str) -> None:
    out = run(admin, ["--db", db_url, "--kek-file", kek_file, "--sta-tables", tables_file,
                      "demo", "--json"])
    assert json.loads(out.output)["table_set"] == "production"


def test_sqlite_default_kek_beside_db(tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    run(admin, ["--db", str(db), "demo", "--json"])
    kek = tmp_path / "v.sqlite3.kek"
    assert kek.exists() and oct(kek.stat().st_mode)[-3:] == "600"


def test_registry_commands_and_campaign(db_url: str, kek_file: str, tmp_path: Path) -> None:
    base = ["--db", db_url, "--kek-file", kek_file]
    run(admin, [*base, "utility", "U1", "--vat-reg-num", "123"])
    run(admin, [*base, "sgc", "111111", "--utility", "U1"])
    key_file = tmp_path / "vk.hex"
    key_file.write_text("abababababababab949494949494949401234567\n")
    run(admin, [*base, "key", "add", "111111", "1", "--base-date", "1993", "--import-file",
                str(key_file)])
    run(admin, [*base, "tariff", "T1", "--block", "100:1.5", "--block", "-:2.5", "--vat",
                "0.15", "--min", "5"])
    run(admin, [*base, "customer", "A1", "Ann", "--debt", "10"])
    pans = demo_pans(2)
    for p in pans:
        run(admin, [*base, "meter", "add", p, "--sgc", "111111", "--tariff", "T1",
                    "--customer", "A1"])
    run(admin, [*base, "meter", "block", pans[1], "--reason", "audit"])
    run(admin, [*base, "meter", "unblock", pans[1]])
    run(admin, [*base, "vendor", "add", "V1", "--float", "100", "--sgc", "111111"])
    run(admin, [*base, "vendor", "topup", "V1", "50"])
    run(admin, [*base, "operator", "add", "op1", "vendor", "--vendor", "V1",
                "--password", "correct horse battery"])
    key = json.loads(run(admin, [*base, "apikey", "add", "vendor", "--vendor", "V1",
                                 "--json"]).output)["api_key"]
    run(admin, [*base, "apikey", "revoke", key[:12]])
    listed = run(admin, [*base, "key", "list", "--json"]).output
    assert "abab" not in listed and '"origin":"imported"' in listed
    run(admin, [*base, "key", "add", "111111", "2", "--base-date", "2014", "--not-current"])
    c = ["--db", db_url, "--kek-file", kek_file]
    run(campaign, [*c, "create", "roll", "--sgc", "111111", "--to-krn", "2", "--from-krn", "1"])
    out_csv = tmp_path / "roll.csv"
    run(campaign, [*c, "run", "roll", "--out", str(out_csv), "--format", "csv", "--limit", "1",
                   "--no-progress"])
    assert len(out_csv.read_text().splitlines()) == 2
    run(campaign, [*c, "run", "roll", "--out", str(out_csv), "--format", "csv", "--progress"])
    lines = out_csv.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("meter,status")
    jl = run(campaign, [*c, "run", "roll", "--format", "jsonl"]).output.splitlines()
    recs = [json.loads(x) for x in jl]
    assert [r["status"] for r in recs] == ["done", "done"] and all(r["krn"] == 2 for r in recs)
    status = json.loads(run(campaign, [*c, "status", "roll", "--json"]).output)
    assert status["done"] == 2 and status["pending"] == 0
    verdict = json.loads(run(audit, ["verify", "--db", db_url, "--json"]).output)
    assert verdict["ok"] and verdict["entries"] > 10


@pytest.mark.slow
def test_audit_verify_detects_tampering(db_url: str, kek_file: str) -> None:
    run(admin, ["--db", db_url, "--kek-file", kek_file, "demo", "--json"])
    eng = create_engine(normalise_url(db_url))
    with eng.begin() as conn:
        conn.execute(text("UPDATE audit_log SET details = '{}' WHERE seq = 3"))
    eng.dispose()
    result = CliRunner().invoke(audit, ["verify", "--db", db_url, "--json"])
    assert result.exit_code == 7
    assert "entry 3" in json.loads(result.output)["problems"][0]


def test_help_loads_no_server_stack() -> None:
    """`sts --help` stays light: the CLI module loads neither the web framework nor the ORM."""
    code = ("import sys, sts.cli.vending; sys.exit(1 if any(m in sys.modules for m in "
            "('fastapi', 'sqlalchemy', 'uvicorn')) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
