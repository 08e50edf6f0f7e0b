"""The key ceremony, `sts admin key list` and `sts admin key migrate --to pkcs11`, driven through
the CLI with a real SoftHSM2 token."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sts.cli.vending import admin
from sts.errors import InputError, KeyDataError
from sts.vending.config import open_service
from sts.vending.keys.ceremony import combine, kcv, parse_component
from sts.vending.storage.tables import audit_log, vending_keys
from tests.fixtures import (
    KNOWN_SGC,
    TEST_VENDING_KEY,
    known_pan,
    make_demo,
    virtual_meter,
)
from tests.hsm.conftest import SoftHsm, destroy_module_keys

C1 = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f011223344")
C2 = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
C3 = bytes(a ^ b ^ c for a, b, c in zip(TEST_VENDING_KEY, C1, C2, strict=True))


def test_kcv_definitions() -> None:
    # DES: the customary banking KCV (DES of a zero block under 0123456789ABCDEF = D5D44FF7...)
    assert kcv(bytes.fromhex("0123456789abcdef"), 2) == "D5D44F"
    # DKGA04: HMAC-SHA-256 over one zero 64-bit block, first 3 bytes
    want = hmac.new(TEST_VENDING_KEY, bytes(8), hashlib.sha256).digest()[:3].hex().upper()
    assert kcv(TEST_VENDING_KEY, 4) == want
    # zero-padding to the token's 32-byte minimum leaves HMAC (and so the KCV) unchanged
    assert kcv(TEST_VENDING_KEY.ljust(32, b"\0"), 4) == want
    parts = [parse_component(c.hex(), 4, n) for n, c in enumerate((C1, C2, C3), 1)]
    assert bytes(combine(parts)) == TEST_VENDING_KEY
    with pytest.raises(KeyDataError) as info:
        parse_component("abcd", 4, 2)
    assert info.value.field == "component2" and "160 bits" in info.value.message
    with pytest.raises(KeyDataError):
        parse_component("zz" * 20, 4, 1)


def _env(softhsm: SoftHsm) -> dict[str, str]:
    return softhsm.env()


def _cli(settings: Any, softhsm: SoftHsm, *args: str, input: str | None = None,
         module: bool = True) -> Any:
    env = _env(softhsm) if module else {"STS_SECURITY_MODULE": "software"}
    result = CliRunner().invoke(admin, ["--db", settings.db_url, "--kek-file",
                                        settings.kek_file, *args], input=input, env=env)
    return result


def test_ceremony_loads_a_known_key(hsm_service: Any, clock: Any, hsm_settings: Any,
                                    softhsm: SoftHsm) -> None:
    demo = make_demo(hsm_service, clock, raw_key=None)
    reg = demo.registry
    reg.add_sgc(KNOWN_SGC, utility="Demo Utility")
    reg.authorise_vendor("Demo Vendor", KNOWN_SGC)
    combined_kcv = kcv(TEST_VENDING_KEY, 4)
    # a wrong expected KCV: refused before anything is stored
    bad = _cli(hsm_settings, softhsm, "key", "ceremony", KNOWN_SGC, "1", "--components", "3",
               "--expect-kcv", "000000", "--json", input=f"{C1.hex()}\n{C2.hex()}\n{C3.hex()}\n")
    assert isinstance(bad.exception, InputError) and bad.exception.field == "expect_kcv"
    assert "nothing was stored" in bad.exception.message
    out = _cli(hsm_settings, softhsm, "key", "ceremony", KNOWN_SGC, "1", "--components", "3",
               "--expect-kcv", combined_kcv.lower(), "--json",
               input=f"{C1.hex()}\n{C2.hex()}\n{C3.hex()}\n")
    assert out.exit_code == 0, out.output
    lines = [json.loads(x) for x in out.output.splitlines() if x.startswith("{")]
    assert lines[:3] == [{"component": n, "kcv": kcv(c, 4)}
                         for n, c in enumerate((C1, C2, C3), 1)]
    assert lines[3] == {"key": f"{KNOWN_SGC}/1", "kcv": combined_kcv, "module": "pkcs11"}
    # the module now holds exactly the test key: its tokens open the meter that holds it
    reg.add_meter(known_pan(), sgc=KNOWN_SGC, tariff="Flat", ti=1)
    meter = virtual_meter(known_pan(), clock)
    sale = demo.buy(known_pan(), "30").json()
    assert meter.enter(sale["tokens"][0]["token"]).result == "accept"
    with hsm_service.db.read() as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action)
                                                  .order_by(audit_log.c.seq))]
        blobs = [r.blob for r in conn.execute(select(vending_keys.c.blob))]
    assert actions.count("key.ceremony.start") == 2 and actions.count("key.ceremony.abort") == 1
    assert actions.count("key.ceremony.component") == 6 and "key.ceremony.done" in actions
    # nothing of a component or the key in the output, the audit log or the key records
    with hsm_service.db.read() as conn:
        logged = json.dumps([dict(r._mapping) for r in conn.execute(select(audit_log))],
                            default=str)
    for secret in (C1, C2, C3, TEST_VENDING_KEY):
        for form in (secret.hex(), secret.hex().upper()):
            assert form not in out.output and form not in logged
        assert all(secret not in b for b in blobs)
    # too few components on stdin: a clear error, no key
    short = _cli(hsm_settings, softhsm, "key", "ceremony", KNOWN_SGC, "2", "--components", "2",
                 input=f"{C1.hex()}\n")
    assert isinstance(short.exception, InputError)
    assert "component 2 is missing" in short.exception.message


def test_list_and_migrate(settings: Any, clock: Any, softhsm: SoftHsm,
                          hsm_settings: Any) -> None:
    """Software keys (the default module) moved into the token; sales go on uninterrupted."""
    svc = open_service(settings, clock=clock, run_migrations=True)
    try:
        demo = make_demo(svc, clock)
        demo.registry.add_key(KNOWN_SGC, 2, dkga=2, raw=bytes.fromhex("abababababababab"),
                              make_current=False)
        pan = known_pan()
        meter = virtual_meter(pan, clock)
        assert meter.enter(demo.buy(pan, "10").json()["tokens"][0]["token"]).result == "accept"
        with svc.db.read() as conn:
            old_blobs = [r.blob for r in conn.execute(select(vending_keys.c.blob))]
    finally:
        svc.db.dispose()
    before = _cli(hsm_settings, softhsm, "key", "list", "--check", "--json", module=False)
    assert before.exit_code == 0, before.output
    rows = [json.loads(x) for x in before.output.splitlines()]
    assert {r["location"].split(" ")[0] for r in rows} == {"software"}
    kcvs = {(r["sgc"], r["krn"]): r["kcv"] for r in rows}
    assert kcvs[(KNOWN_SGC, 1)] == kcv(TEST_VENDING_KEY, 4)
    assert kcvs[(KNOWN_SGC, 2)] == kcv(bytes.fromhex("abababababababab"), 2)
    moved = _cli(hsm_settings, softhsm, "key", "migrate", "--to", "pkcs11", "--json")
    assert moved.exit_code == 0, moved.output
    summary = json.loads(moved.output.splitlines()[-1])
    assert summary["moved"] == 2 and summary["skipped"] == 1  # the DKGA02 key stays
    assert summary["software_keys_left"] == 1
    # the module chosen by options alone (the PIN only ever from a file or the environment)
    after = CliRunner().invoke(admin, [
        "--db", hsm_settings.db_url, "--kek-file", hsm_settings.kek_file,
        "--security-module", "pkcs11", "--pkcs11-lib", softhsm.lib, "--pkcs11-token",
        softhsm.token, "--pkcs11-pin-file", hsm_settings.pkcs11_pin_file, "--pkcs11-cache-seconds",
        "10", "key", "list", "--check", "--json"], env={k: None for k in (
            "STS_SECURITY_MODULE", "STS_PKCS11_LIB", "STS_PKCS11_TOKEN", "STS_PKCS11_PIN",
            "STS_PKCS11_PIN_FILE")})
    assert after.exit_code == 0, after.output
    rows = [json.loads(x) for x in after.output.splitlines()]
    where = {(r["sgc"], r["krn"]): r for r in rows}
    assert where[(KNOWN_SGC, 1)]["location"].startswith(f"pkcs11:{softhsm.token}:sts-vk/")
    assert where[(KNOWN_SGC, 1)]["module"] == "pkcs11"
    assert {(k, r["kcv"]) for k, r in where.items()} == set(kcvs.items())
    assert where[(KNOWN_SGC, 2)]["module"] == "software"
    # the software copies are gone from the records and (SQLite) from the file's free pages
    svc = open_service(hsm_settings, clock=clock)
    try:
        with svc.db.read() as conn:
            now_blobs = [r.blob for r in conn.execute(select(vending_keys.c.blob))]
        gone = [b for b in old_blobs if b not in now_blobs]
        assert len(gone) == 2
        if svc.db.is_sqlite:
            path = Path(hsm_settings.db_url.split(":///", 1)[1])
            data = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*"))
            assert not any(b in data for b in gone)
        # the meter keeps buying, now under the module's key
        from fastapi.testclient import TestClient

        from sts.server.app import create_app

        client = TestClient(create_app(svc), raise_server_exceptions=False)
        api_key = _vendor_key(svc, clock)
        sale = client.post("/v1/purchases/after-migration-1", json={"meter": pan, "amount": "10"},
                           headers={"Authorization": f"Bearer {api_key}"})
        assert sale.status_code == 201, sale.text
        assert meter.enter(sale.json()["tokens"][0]["token"]).result == "accept"
    finally:
        destroy_module_keys(svc.db, svc.sm)
        svc.sm.close()
        svc.db.dispose()


def _vendor_key(svc: Any, clock: Any) -> str:
    from sts.vending.registry.admin import Registry

    reg = Registry(svc.db, svc.sm, clock=clock)
    return str(reg.add_api_key("vendor", label="after migration", vendor="Demo Vendor"))
