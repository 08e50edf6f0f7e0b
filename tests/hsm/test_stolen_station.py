"""The stolen-station test over HTTP, against a real `sts serve` process: a copy of the database
and configuration without the module's PIN, or without the module at all, issues nothing; with the
module back the same purchase ids sell normally (and a key change with a sale goes through)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sts.cli.vending import campaign
from sts.errors import SecurityModuleUnavailable
from sts.server.app import create_app
from sts.vending.config import open_service
from sts.vending.storage.tables import campaign_items, tokens, transactions, vendors
from sts.vending.usecases import campaign as camp
from tests.fixtures import KNOWN_SGC, known_pan, make_demo, virtual_meter
from tests.hsm.conftest import SoftHsm
from tests.support.server import Server

NEW_KEY = bytes.fromhex("0102030405060708090a0b0c0d0e0f1011121314")


def _written(db: Any) -> tuple[Any, ...]:
    with db.read() as conn:
        return (conn.scalar(select(func.count()).select_from(transactions)),
                conn.scalar(select(func.count()).select_from(tokens)),
                conn.scalar(select(func.sum(vendors.c.float_balance))))


def _serve(settings: Any, softhsm: SoftHsm, tmp_path: Path, **env: str) -> Server:
    extra = softhsm.env() | env
    return Server(settings.db_url, settings.kek_file, log=tmp_path / "server.log",
                  extra_env=extra).start()


@pytest.mark.slow
def test_stolen_station(hsm_service: Any, hsm_settings: Any, clock: Any, softhsm: SoftHsm,
                        tmp_path: Path) -> None:
    clock.t = clock.t.replace(year=2026)  # the server runs on the wall clock
    demo = make_demo(hsm_service, clock)
    reg = demo.registry
    reg.add_key(KNOWN_SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    camp.create(hsm_service, "rekey", sgc=KNOWN_SGC, to_krn=2, from_krn=1)
    pan, other = known_pan(), demo.meters[0]
    vendor = {"Authorization": f"Bearer {demo.keys['vendor']}"}
    engineer = {"Authorization": f"Bearer {demo.keys['engineer']}"}
    sale_pid, kc_pid = str(uuid.uuid4()), str(uuid.uuid4())
    before = _written(hsm_service.db)
    # the copy without the module: refused in-process (same service code as the server)
    absent = replace(hsm_settings, pkcs11_lib=str(tmp_path / "absent.so"))
    copy = open_service(absent, clock=clock)
    try:
        client = TestClient(create_app(copy), raise_server_exceptions=False)
        r = client.post(f"/v1/purchases/{sale_pid}", json={"meter": other, "amount": "100"},
                        headers=vendor)
        assert r.status_code == 503 and r.json()["code"] == "SECURITY_MODULE_UNAVAILABLE"
    finally:
        copy.db.dispose()
    # the copy without the PIN, as a real server process
    server = _serve(hsm_settings, softhsm, tmp_path, STS_PKCS11_PIN="999999")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(2):  # a retry is refused the same way
                r = http.post(f"/v1/purchases/{sale_pid}",
                              json={"meter": other, "amount": "100"}, headers=vendor)
                assert r.status_code == 503, r.text
                body = r.json()
                assert body["code"] == "SECURITY_MODULE_UNAVAILABLE"
                assert set(body) <= {"code", "message", "field"}
            r = http.post(f"/v1/purchases/{kc_pid}", json={"meter": pan, "amount": "50"},
                          headers=vendor)
            assert r.status_code == 503
            r = http.post(f"/v1/engineering/{uuid.uuid4()}", headers=engineer,
                          json={"meter": pan, "type": "key_change", "to_krn": 2,
                                "reason": "stolen station test"})
            assert r.status_code == 503 and r.json()["code"] == "SECURITY_MODULE_UNAVAILABLE"
    finally:
        server.stop()
    assert "999999" not in (tmp_path / "server.log").read_text()
    # a campaign from the stolen copy: refused, every meter still pending
    run = CliRunner().invoke(campaign, ["--db", hsm_settings.db_url, "--kek-file",
                                        hsm_settings.kek_file, "run", "rekey", "--no-progress"],
                             env=softhsm.env() | {"STS_PKCS11_LIB": str(tmp_path / "absent.so")})
    assert isinstance(run.exception, SecurityModuleUnavailable)
    assert _written(hsm_service.db) == before
    with hsm_service.db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(campaign_items)
                           .where(campaign_items.c.status == "pending")) == 1
    # the module is back: the same ids sell normally; the known meter gets its key change
    reg.set_current_key(KNOWN_SGC, 2)
    server = _serve(hsm_settings, softhsm, tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            r = http.post(f"/v1/purchases/{sale_pid}", json={"meter": other, "amount": "100"},
                          headers=vendor)
            assert r.status_code == 201, r.text
            assert [t["kind"] for t in r.json()["tokens"]] == ["STD"]
            r = http.post(f"/v1/purchases/{kc_pid}", json={"meter": pan, "amount": "50"},
                          headers=vendor)
            assert r.status_code == 201, r.text
            sale = r.json()
            again = http.post(f"/v1/purchases/{kc_pid}", json={"meter": pan, "amount": "50"},
                              headers=vendor)
            assert again.status_code == 200 and again.json()["tokens"] == sale["tokens"]
    finally:
        server.stop()
    assert [t["kind"] for t in sale["tokens"]] == ["KCT", "KCT", "STD"]
    clock.t = clock.t.replace(year=2025)  # the virtual meter starts before the sale's TIDs
    meter = virtual_meter(pan, clock)
    for t in sale["tokens"]:
        assert meter.enter(t["token"]).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 2
    with hsm_service.db.read() as conn:
        counts = conn.execute(select(transactions.c.request_id, func.count())
                              .where(transactions.c.request_id.in_([sale_pid, kc_pid]))
                              .group_by(transactions.c.request_id)).all()
    assert sorted(n for _, n in counts) == [1, 1]
