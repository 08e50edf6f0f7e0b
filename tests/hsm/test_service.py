"""Sales, key changes, campaigns and verification with the vending keys in a SoftHSM2 token:
the module's failure modes (removed mid-run, wrong PIN, no library) and its decoder-key cache."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sts.engine import decode
from sts.errors import SecurityModuleUnavailable
from sts.vending import audit
from sts.vending.keys.security_module import MeterIdentity
from sts.vending.storage.tables import campaign_items, meters, tokens, transactions, vendors
from sts.vending.usecases import campaign as camp
from tests.fixtures import (
    KNOWN_SGC,
    TEST_VENDING_KEY,
    known_pan,
    make_demo,
    meter_key,
    virtual_meter,
)
from tests.hsm.conftest import ManualClock, SoftHsm

NEW_KEY = bytes(reversed(TEST_VENDING_KEY))


def _state(db: Any, pan: str) -> tuple[Any, ...]:
    """Everything a sale writes: counts, the meter's TID state, the vendor's float."""
    with db.read() as conn:
        return (conn.scalar(select(func.count()).select_from(transactions)),
                conn.scalar(select(func.count()).select_from(tokens)),
                tuple(conn.execute(select(meters.c.last_tid, meters.c.key_id,
                                          meters.c.tid_epoch)
                                   .where(meters.c.pan == pan)).one()),
                conn.scalar(select(func.sum(vendors.c.float_balance))))


def test_sale_and_key_change_with_sale(hsm_service: Any, clock: Any) -> None:
    demo = make_demo(hsm_service, clock)
    listed = demo.registry.list_keys()
    assert {k["module"] for k in listed} == {"pkcs11"}
    pan = known_pan()
    meter = virtual_meter(pan, clock)
    sale = demo.buy(pan, "100")
    assert sale.status_code == 201, sale.text
    first = sale.json()["tokens"][0]["token"]
    assert meter.enter(first).result == "accept"
    # a demo meter on a key generated inside the token: its token decodes through the module
    other = demo.buy(demo.meters[0], "50").json()["tokens"][0]["token"]
    check = demo.client.post("/v1/tokens/verify", json={"meter": demo.meters[0], "token": other},
                             headers=demo.h("vendor")).json()
    assert check["issued"] and check["decoded"]["class"] == 0
    # key change with a sale: KRN 2 imported into the module and made current
    demo.registry.add_key(KNOWN_SGC, 2, raw=NEW_KEY, base_date=2014)
    clock.advance(minutes=3)
    sale = demo.buy(pan, "40").json()
    assert [t["kind"] for t in sale["tokens"]] == ["KCT", "KCT", "STD"]
    for t in sale["tokens"]:
        assert meter.enter(t["token"]).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 2
    new = meter_key(pan, krn=2, vending_key=NEW_KEY)
    assert decode(sale["tokens"][2]["token"], new).fields["units"] == sale["tokens"][2]["units"]
    assert audit.verify(hsm_service.db).ok


def _move_token_away(softhsm: SoftHsm) -> tuple[Path, Path]:
    tokens_dir = softhsm.directory / "tokens"
    (only,) = list(tokens_dir.iterdir())
    away = softhsm.directory / "away"
    shutil.move(str(only), str(away))
    return away, only


def test_module_removed_mid_run(hsm_service: Any, clock: Any, softhsm: SoftHsm) -> None:
    demo = make_demo(hsm_service, clock)
    reg = demo.registry
    pan, cold = known_pan(), demo.meters[1]
    assert demo.buy(pan, "20").status_code == 201  # the known meter's key is now cached
    reg.add_key(KNOWN_SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    camp.create(hsm_service, "to-krn2", sgc=KNOWN_SGC, to_krn=2, from_krn=1)
    hsm_service.sm._cache.clear()  # every meter needs the module from here on
    before_cold, before_known = _state(hsm_service.db, cold), _state(hsm_service.db, pan)
    pid = str(uuid.uuid4())
    away, home = _move_token_away(softhsm)
    try:
        refused = demo.buy(cold, "100", pid)
        assert refused.status_code == 503
        body = refused.json()
        assert body["code"] == "SECURITY_MODULE_UNAVAILABLE" and set(body) <= {
            "code", "message", "field"}
        kc = demo.client.post(f"/v1/engineering/{uuid.uuid4()}", headers=demo.h("engineer"),
                              json={"meter": pan, "type": "key_change", "reason": "rekey",
                                    "to_krn": 2})
        assert kc.status_code == 503 and kc.json()["code"] == "SECURITY_MODULE_UNAVAILABLE"
        verify = demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": "1" * 20},
                                  headers=demo.h("vendor"))
        assert verify.status_code == 503
        with pytest.raises(SecurityModuleUnavailable):
            list(camp.run(hsm_service, "to-krn2"))
        assert demo.buy(cold, "100", pid).status_code == 503  # a retry while still away
        assert _state(hsm_service.db, cold) == before_cold
        assert _state(hsm_service.db, pan) == before_known
        assert camp.status(hsm_service, "to-krn2")["pending"] == 1
        with hsm_service.db.read() as conn:
            assert conn.scalar(select(transactions.c.seq)
                               .where(transactions.c.request_id == pid)) is None
    finally:
        shutil.move(str(away), str(home))
    # the module is back: the same purchase id sells once, and a repeat gets the same answer
    sold = demo.buy(cold, "100", pid)
    assert sold.status_code == 201, sold.text
    again = demo.buy(cold, "100", pid)
    assert again.status_code == 200 and again.json()["tokens"] == sold.json()["tokens"]
    with hsm_service.db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(transactions)
                           .where(transactions.c.request_id == pid)) == 1
        assert conn.scalar(select(func.count()).select_from(campaign_items)
                           .where(campaign_items.c.status == "pending")) == 1
    done = list(camp.run(hsm_service, "to-krn2"))
    assert [r["status"] for r in done] == ["done"]
    assert audit.verify(hsm_service.db).ok


def test_decoder_keys_cached_for_the_configured_time(softhsm: SoftHsm,
                                                     hsm_clock: ManualClock) -> None:
    sm = softhsm.module(clock=hsm_clock, cache_seconds=60)
    try:
        blob = sm.import_key(TEST_VENDING_KEY, sgc=KNOWN_SGC, krn=1, dkga=4)
        from sts.vending.keys.security_module import KeyRecord

        rec = KeyRecord(7, KNOWN_SGC, 1, "VUDK", 4, 7, 2014, "sample", "pkcs11", blob)
        ident = MeterIdentity(known_pan(), 2, 1)
        calls: list[str] = []
        real = sm._run

        def counting(what: str, op: Any) -> Any:
            calls.append(what)
            return real(what, op)

        sm._run = counting
        want = meter_key(known_pan()).decoder_key
        assert sm.meter_key(rec, ident).decoder_key == want
        assert sm.meter_key(rec, ident).decoder_key == want
        assert calls == ["a key derivation"] and sm.cached_keys() == 1
        hsm_clock.advance(59)
        sm.meter_key(rec, ident)
        assert len(calls) == 1
        hsm_clock.advance(1)  # 60 s after the derivation: expired, back to the token
        assert sm.cached_keys() == 0
        assert sm.meter_key(rec, ident).decoder_key == want
        assert len(calls) == 2
        sm.cache_seconds = 0  # no caching at all
        sm.meter_key(rec, ident)
        sm.meter_key(rec, ident)
        assert len(calls) == 4
        sm._run = real
        sm.destroy_key(rec)
    finally:
        sm.close()


def test_wrong_pin_and_missing_library(softhsm: SoftHsm) -> None:
    from sts.vending.keys.security_module import KeyRecord

    rec = KeyRecord(1, KNOWN_SGC, 1, "VUDK", 4, 7, 2014, "sample", "pkcs11",
                    b"pkcs11:sts-vk/" + KNOWN_SGC.encode() + b"/1/dkga04/00000000")
    ident = MeterIdentity(known_pan(), 2, 1)
    wrong = softhsm.module(pin="000000")
    with pytest.raises(SecurityModuleUnavailable) as info:
        wrong.meter_key(rec, ident)
    assert "refused the PIN" in info.value.message and "000000" not in info.value.message
    with pytest.raises(SecurityModuleUnavailable) as info:
        wrong.meter_key(rec, ident)  # not tried again: a real token would lock
    assert "not tried again" in info.value.message
    wrong.close()
    gone = softhsm.module(lib="/nonexistent/libpkcs11.so")
    with pytest.raises(SecurityModuleUnavailable) as info:
        gone.create_key(sgc=KNOWN_SGC, krn=1, dkga=4)
    assert info.value.code == "SECURITY_MODULE_UNAVAILABLE"
    nopin = softhsm.module(pin="")
    with pytest.raises(SecurityModuleUnavailable):
        nopin.meter_key(rec, ident)
