"""Key change on sale, key change campaigns (TID rollover 1993/KRN 1 -> 2014/KRN 2, RO=1)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sts.engine import decode
from sts.vending import audit
from sts.vending.usecases import campaign as camp
from tests.fixtures import virtual_meter
from tests.support.keychange import SGC, new_key, old_key, rollover_setup


def test_key_change_on_sale(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock)
    pan = pans[0]
    meter = virtual_meter(pan, clock, krn=1, base_date=1993, sgc=SGC)
    before = demo.buy(pan, "20").json()
    assert [t["kind"] for t in before["tokens"]] == ["STD"]
    assert meter.enter(before["tokens"][0]["token"]).result == "accept"
    demo.registry.set_current_key(SGC, 2)
    look = demo.client.get(f"/v1/meters/{pan}", headers=demo.h("vendor")).json()
    assert look["key_change_due"] is True and look["new_key"]["rollover"] is True
    clock.advance(minutes=5)
    sale = demo.buy(pan, "50").json()
    kinds = [t["kind"] for t in sale["tokens"]]
    assert kinds == ["KCT", "KCT", "STD"]
    assert sale["receipt"]["key_change"]["to"] == {"sgc": SGC, "krn": 2, "ti": 1,
                                                   "base_date": 2014}
    k1, k2, credit = sale["tokens"]
    assert decode(k1["token"], old_key(pan)).fields["ro"] == 1
    assert decode(k2["token"], old_key(pan)).subclass == 4
    assert decode(credit["token"], new_key(pan)).fields["units"] == credit["units"]
    for t in sale["tokens"]:
        assert meter.enter(t["token"]).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 2
    look = demo.client.get(f"/v1/meters/{pan}", headers=demo.h("vendor")).json()
    assert look["key_change_due"] is False and look["meter"]["krn"] == 2
    nxt = demo.buy(pan, "10").json()
    assert [t["kind"] for t in nxt["tokens"]] == ["STD"]
    assert meter.enter(nxt["tokens"][0]["token"]).result == "accept"
    v = demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": k1["token"]},
                         headers=demo.h("engineer")).json()
    assert v["issued"] and v["decoded"]["kind"] == "key_change_1"
    assert "key_part" not in v["decoded"]
    assert audit.verify(service.db).ok


def test_reversing_a_key_change_sale_restores_the_key(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock)
    demo.registry.set_current_key(SGC, 2)
    pid = str(uuid.uuid4())
    sale = demo.buy(pans[0], "50", pid).json()
    assert len(sale["tokens"]) == 3
    r = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "printer jam"},
                         headers=demo.h("supervisor"))
    assert r.status_code == 201
    again = demo.buy(pans[0], "50").json()
    assert [t["kind"] for t in again["tokens"]] == ["KCT", "KCT", "STD"]
    assert again["tokens"][0]["token"] == sale["tokens"][0]["token"]  # same KCTs: same keys
    # a later sale exists now, so this one can no longer be reversed
    pid2 = str(uuid.uuid4())
    demo.buy(pans[1], "50", pid2)
    demo.buy(pans[1], "10")
    late = demo.client.post(f"/v1/purchases/{pid2}/reversals", json={"reason": "late"},
                            headers=demo.h("supervisor"))
    assert late.status_code == 409 and late.json()["code"] == "REVERSAL_NOT_ALLOWED"


def test_engineering_key_change(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock)
    r = demo.client.post(f"/v1/engineering/{uuid.uuid4()}",
                         json={"meter": pans[0], "type": "key_change", "reason": "rollover visit",
                               "to_krn": 2}, headers=demo.h("engineer"))
    assert r.status_code == 201, r.text
    toks = r.json()["tokens"]
    assert [t["kind"] for t in toks] == ["KCT", "KCT"]
    assert r.json()["key_change"]["rollover"] is True
    meter = virtual_meter(pans[0], clock, krn=1, base_date=1993, sgc=SGC)
    for t in toks:
        meter.enter(t["token"])
    assert meter.state.memory.key.krn == 2


def test_campaign_resumes_without_issuing_twice(service: Any, clock: Any, tmp_path: Any) -> None:
    demo, pans = rollover_setup(service, clock, meters=4)
    out = camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    assert out == {"campaign": "rollover", "meters": 4, "to_krn": 2, "ro": True}
    first = list(camp.run(service, "rollover", limit=2))  # "interrupted" after two
    assert [r["status"] for r in first] == ["done", "done"]
    assert camp.status(service, "rollover") == {"campaign": "rollover", "pending": 2, "done": 2,
                                                "failed": 0, "skipped": 0}
    rest = list(camp.run(service, "rollover"))
    assert len(rest) == 4 and all(r["status"] == "done" for r in rest)
    assert rest[:2] == first  # earlier records come back from the database unchanged
    assert list(camp.run(service, "rollover")) == rest  # nothing left: no new issue
    for rec in rest:
        assert len(rec["tokens"]) == 2 and rec["krn"] == 2 and rec["rollover"] is True
        meter = virtual_meter(rec["meter"], clock, krn=1, base_date=1993, sgc=SGC)
        for t in rec["tokens"]:
            meter.enter(t)
        assert meter.state.memory.key.krn == 2
    csv_text = camp.csv_header() + "".join(camp.to_csv_row(r) for r in rest)
    assert csv_text.count("\n") == 5 and rest[0]["tokens"][0] in csv_text
    json.dumps(rest)
    # after the campaign a sale needs no key change
    assert [t["kind"] for t in demo.buy(pans[0], "10").json()["tokens"]] == ["STD"]
    assert audit.verify(service.db).ok
