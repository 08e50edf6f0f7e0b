"""A key change campaign over 1,000 meters with the keys in the token: every meter moved once,
every derivation done by the module, tokens correct for the meters that hold the keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.engine import decode
from sts.vending import audit
from sts.vending.storage.tables import meters, supply_groups, tariffs, vending_keys
from sts.vending.usecases import campaign as camp
from tests.fixtures import TEST_VENDING_KEY, make_demo, meter_key

SGC = "999950"
NEW_KEY = bytes(reversed(TEST_VENDING_KEY))
COUNT = 1000


def pan_for(i: int) -> str:
    body = f"07{60000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


def test_campaign_over_1000_meters(hsm_service: Any, clock: Any) -> None:
    demo = make_demo(hsm_service, clock, raw_key=None)
    reg = demo.registry
    reg.add_sgc(SGC, utility="Demo Utility")
    reg.add_key(SGC, 1, raw=TEST_VENDING_KEY, base_date=2014)
    reg.add_key(SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    with hsm_service.db.begin() as conn:  # bulk registration: the campaign is under test
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == SGC))
        kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                         vending_keys.c.krn == 1))
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == "Flat"))
        conn.execute(insert(meters), [
            {"pan": pan_for(i), "tariff_id": tid, "sgc_id": sid, "key_id": kid, "ti": 1,
             "kt": 2, "ken": 255, "mfr_code": pan_for(i)[6:8], "service": "electricity",
             "status": "active", "status_reason": "", "last_tid": 0, "tid_epoch": 0,
             "max_epoch": 0, "last_hash": "", "created_at": clock()}
            for i in range(COUNT)])
    created = camp.create(hsm_service, "krn2", sgc=SGC, to_krn=2, from_krn=1)
    assert created["meters"] == COUNT
    calls: list[str] = []
    real = hsm_service.sm._run

    def counting(what: str, op: Any) -> Any:
        calls.append(what)
        return real(what, op)

    hsm_service.sm._run = counting
    records = list(camp.run(hsm_service, "krn2"))
    hsm_service.sm._run = real
    assert len(records) == COUNT and {r["status"] for r in records} == {"done"}
    assert calls.count("a key derivation") == 2 * COUNT  # old and new key, once per meter
    for rec in (records[0], records[COUNT // 2], records[-1]):
        old = meter_key(rec["meter"], sgc=SGC)
        new = meter_key(rec["meter"], sgc=SGC, krn=2, vending_key=NEW_KEY)
        first, second = (decode(t, old) for t in rec["tokens"])
        assert (first.subclass, second.subclass) == (3, 4)
        carried = first.fields["key_part"] << 32 | second.fields["key_part"]
        assert carried == int.from_bytes(new.decoder_key, "big")
        assert first.fields["krn"] == 2
    assert camp.status(hsm_service, "krn2")["done"] == COUNT
    again = list(camp.run(hsm_service, "krn2"))  # a re-run issues nothing new
    assert len(again) == COUNT and {r["status"] for r in again} == {"done"}
    assert audit.verify(hsm_service.db).ok
