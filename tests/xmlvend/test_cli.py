"""`sts admin demo --json` prints a working XMLVend client; `sts admin xmlvend` registers,
lists and revokes clients and adds, re-keys and disables their operators, all audited."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient

from sts.cli.vending import admin, audit
from sts.server.app import create_app
from sts.vending.config import Settings, open_service
from tests.support.xmlvend import Client, drn_of


def run(args: list[str]) -> Any:
    result = CliRunner().invoke(admin, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_demo_client_and_admin_commands(db_url: str, kek_file: str) -> None:
    base = ["--db", db_url, "--kek-file", kek_file]
    info = json.loads(run([*base, "demo", "--json"]).output)
    x = info["xmlvend"]
    assert set(x) == {"client_id", "terminal_id", "operator", "password", "profile", "url"}
    assert x["profile"] == "hexing" and x["url"].endswith("/xmlvend")
    svc = open_service(Settings(db_url=db_url, kek_file=kek_file))
    try:
        http = TestClient(create_app(svc), raise_server_exceptions=False)
        demo = Client(http, client_id=x["client_id"], op=x["operator"], password=x["password"],
                      terminal=x["terminal_id"])
        msno = drn_of(info["meters"][0])
        sold = demo.vend(msno, "20")
        assert sold.status == 200, sold.text
        run([*base, "xmlvend", "client", "add", "6001234567890", "--vendor", "Demo Vendor",
             "--profile", "conlog"])
        added = json.loads(run(["xmlvend", "operator", "add", "6001234567890", "till-1", *base,
                                "--json"]).output)
        till = Client(http, client_id="6001234567890", op="till-1", password=added["password"])
        assert till.vend(msno, "20").status == 200
        new = json.loads(run([*base, "--json", "xmlvend", "operator", "password",
                              "6001234567890", "till-1"]).output)["password"]
        assert till.vend(msno, "20").fault_type == "RequestAuthorisationEx"
        till.password = new
        assert till.vend(msno, "20").status == 200
        rows = [json.loads(r) for r in
                run([*base, "xmlvend", "client", "list", "--json"]).output.splitlines()]
        assert {r["client_id"] for r in rows} == {x["client_id"], "6001234567890"}
        assert "password" not in json.dumps(rows) and "secret_hash" not in json.dumps(rows)
        run([*base, "xmlvend", "operator", "disable", "6001234567890", "till-1"])
        assert till.vend(msno, "20").fault_type == "RequestAuthorisationEx"
        run([*base, "xmlvend", "client", "revoke", x["client_id"]])
        assert demo.vend(msno, "20").fault_type == "ClientIDAuthorisationEx"
        bad = CliRunner().invoke(admin, [*base, "xmlvend", "client", "add", "x y",
                                         "--vendor", "Demo Vendor"])
        assert bad.exit_code != 0
        verified = CliRunner().invoke(audit, ["verify", *base, "--json"])
        assert verified.exit_code == 0 and json.loads(verified.output)["ok"] is True
    finally:
        svc.db.dispose()


def test_client_certificate_binding(demo: Any) -> None:
    from sts.vending.access import vend_clients
    from sts.xmlvend import mount
    from sts.xmlvend.face import Settings as FaceSettings
    from tests.support.xmlvend import register

    fp = "ab" * 32
    register(demo, cert=fp)
    register(demo, client_id="6001234567891")
    mount(demo.client.app, demo.service, FaceSettings(cert_header="x-client-cert-sha256"))
    c = Client(demo.client)
    msno = drn_of(demo.meters[0])
    assert c.vend(msno, "20").fault_type == "ClientIDSSLEx"  # no certificate presented
    ok = c.post(c.request("loginReq", ""), **{"x-client-cert-sha256": fp})
    assert ok.status == 200, ok.text
    other = Client(demo.client, client_id="6001234567891")
    stolen = other.post(other.request("loginReq", ""), **{"x-client-cert-sha256": fp})
    assert stolen.fault_type == "ClientIDSSLEx"
    assert vend_clients.find_client(demo.service.db, "6001234567890") is not None
