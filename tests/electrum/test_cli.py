"""`sts admin demo --json` prints a working Electrum credential; `sts admin electrum` issues,
lists and revokes credentials."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient

from sts.cli.vending import admin, audit
from sts.server.app import create_app
from sts.vending.config import Settings, open_service
from tests.support.electrum import envelope, new_id


def run(args: list[str]) -> Any:
    result = CliRunner().invoke(admin, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_demo_credentials_work_and_revoke(db_url: str, kek_file: str) -> None:
    base = ["--db", db_url, "--kek-file", kek_file]
    info = json.loads(run([*base, "demo", "--json"]).output)
    user, password = info["electrum"]["username"], info["electrum"]["password"]
    svc = open_service(Settings(db_url=db_url, kek_file=kek_file))
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        lid = new_id()
        body = envelope(lid, meter={"meterId": info["meters"][0]})
        ok = client.post(f"/prepaidutility/v3/meterLookups/{lid}", json=body,
                         auth=(user, password))
        assert ok.status_code == 201, ok.text
        issued = json.loads(run([*base, "electrum", "add", "--vendor", "Demo Vendor",
                                 "--username", "switch-one", "--json"]).output)
        assert issued["username"] == "switch-one" and len(issued["password"]) >= 24
        # the shared options go before or after the subcommand
        listed = run(["electrum", "list", *base, "--json"]).output.splitlines()
        rows = [json.loads(x) for x in listed]
        assert {r["username"] for r in rows} == {user, "switch-one"}
        assert all("password" not in r and "secret_hash" not in r for r in rows)
        assert json.loads(run(["electrum", "revoke", user, *base, "--json"]).output) == {
            "username": user, "revoked": True}
        lid = new_id()
        gone = client.post(f"/prepaidutility/v3/meterLookups/{lid}",
                           json=envelope(lid, meter={"meterId": info["meters"][0]}),
                           auth=(user, password))
        assert gone.status_code == 401 and gone.json()["errorType"] == "INVALID_MERCHANT"
        lid = new_id()
        other = client.post(f"/prepaidutility/v3/meterLookups/{lid}",
                            json=envelope(lid, meter={"meterId": info["meters"][0]}),
                            auth=("switch-one", issued["password"]))
        assert other.status_code == 201
        journal = [json.loads(x) for x in
                   run(["--json", *base, "electrum", "journal"]).output.splitlines()]
        assert [(j["operation"], j["http_status"]) for j in journal] == [
            ("createMeterLookup", 201), ("createMeterLookup", 401), ("createMeterLookup", 201)]
        assert journal[1]["error_type"] == "INVALID_MERCHANT" and journal[1]["username"] == user
        assert journal[2]["username"] == "switch-one"
        # issuing and revoking credentials keeps the audit chain whole
        verified = CliRunner().invoke(audit, ["verify", *base, "--json"])
        assert verified.exit_code == 0 and json.loads(verified.output)["ok"] is True
    finally:
        svc.db.dispose()
