"""Key change tokens on request (and their confirmation), and free basic units (BSST) once a
month, over HTTP on SQLite and PostgreSQL, checked on the virtual meter."""

from __future__ import annotations

from typing import Any

from sts.codec.pan import MeterPan, luhn_check_digit
from tests.fixtures import KNOWN_SGC, known_pan, virtual_meter
from tests.support.electrum import Switch, envelope, make_switch, new_id
from tests.support.keychange import SGC, pan_for, rollover_setup


def kc_request(switch: Switch, meter_id: str, rid: str | None = None) -> Any:
    rid = rid or new_id()
    return switch.post(f"/keyChangeTokenRequests/{rid}", envelope(rid, meter={"meterId": meter_id}))


def test_key_change_request_then_confirm(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock, meters=2)
    switch = make_switch(demo)
    pan = pans[0]
    nothing = kc_request(switch, pan)
    assert nothing.status_code == 400 and nothing.json()["errorType"] == "METER_KEY_INVALID"
    demo.registry.set_current_key(SGC, 2)
    look = switch.lookup(pan).json()
    assert look["meter"]["keyChangeData"] == {"newSupplyGroupCode": SGC,
                                              "newKeyRevisionNumber": "2", "newTariffIndex": "01"}
    rid = new_id()
    r = kc_request(switch, pan, rid)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == rid and body["time"] == "2025-03-03T10:00:00.123+02:00"
    assert [t["tokenType"] for t in body["tokens"]] == ["KC", "KC"]
    assert all(t["units"] == 0 and t["amount"]["amount"] == 0 for t in body["tokens"])
    assert body["meter"]["keyRevisionNum"] == "1"  # what the meter holds until it takes the KCTs
    assert body["meter"]["keyChangeData"]["newKeyRevisionNumber"] == "2"
    assert body["slipData"]["messageLines"]
    meter = virtual_meter(pan, clock, krn=1, base_date=1993, sgc=SGC)
    assert [meter.enter(t["token"]).result for t in body["tokens"]] == ["key_change_1",
                                                                        "accept"]
    # asked again before any other token: the same set, never a second one
    again = kc_request(switch, pan).json()
    assert [t["token"] for t in again["tokens"]] == [t["token"] for t in body["tokens"]]
    cid = new_id()
    adv = switch.advice(rid, cid)
    c = switch.post(f"/keyChangeTokenRequests/{rid}/confirmations/{cid}", adv)
    assert c.status_code == 202 and c.json()["requestId"] == rid
    assert switch.post(f"/keyChangeTokenRequests/{rid}/confirmations/{cid}",
                       adv).status_code == 202
    ghost = new_id()
    g = switch.post(f"/keyChangeTokenRequests/{ghost}/confirmations/{cid}",
                    switch.advice(ghost, cid))
    assert g.status_code == 400 and g.json()["errorType"] == "DUPLICATE_RECORD"
    gid = new_id()
    g = switch.post(f"/keyChangeTokenRequests/{ghost}/confirmations/{gid}",
                    switch.advice(ghost, gid))
    assert g.status_code == 404 and g.json()["errorType"] == "UNABLE_TO_LOCATE_RECORD"
    # the next purchase is under the new key, without KCTs
    clock.advance(minutes=2)
    sale = switch.buy(pan, 2000).json()
    assert [t["tokenType"] for t in sale["tokens"]] == ["STD"]
    assert sale["meter"]["keyRevisionNum"] == "2"
    assert meter.enter(sale["tokens"][0]["token"]).result == "accept"


def test_key_change_tokens_come_with_a_purchase(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock, meters=1)
    switch = make_switch(demo)
    demo.registry.set_current_key(SGC, 2)
    sale = switch.buy(pans[0], 5000).json()
    assert [t["tokenType"] for t in sale["tokens"]] == ["KC", "KC", "STD"]
    assert sale["meter"]["keyRevisionNum"] == "1"
    assert sale["meter"]["keyChangeData"]["newKeyRevisionNumber"] == "2"
    meter = virtual_meter(pans[0], clock, krn=1, base_date=1993, sgc=SGC)
    assert [meter.enter(t["token"]).result for t in sale["tokens"]] == [
        "key_change_1", "accept", "accept"]
    assert pan_for(1) == pans[0]


def fbe_pan() -> str:
    body = "0420000002"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


def test_free_basic_units_once_a_month(demo: Any, switch: Switch) -> None:
    reg = demo.registry
    reg.add_tariff("FBE", price="2.50", vat_rate="0.15", free_units="50", min_amount="5", ti=1)
    pan = fbe_pan()
    reg.add_meter(pan, sgc=KNOWN_SGC, tariff="FBE", ti=1)
    meter = virtual_meter(pan, demo.clock)
    assert switch.lookup(pan).json()["bsstDue"] is True
    tid_ = new_id()
    trial = switch.post(f"/tokenPurchases/{tid_}/trial",
                        switch.purchase_request(pan, 0, pid=tid_)).json()
    assert [(t["tokenType"], t["units"], t["token"]) for t in trial["tokens"]] == [
        ("BSST", 50, "0" * 20)]
    free = switch.buy(pan, 0)
    assert free.status_code == 201, free.text
    (tok,) = free.json()["tokens"]
    assert tok["tokenType"] == "BSST" and tok["units"] == 50
    assert tok["amount"] == {"amount": 0, "currency": "710"}
    assert meter.enter(tok["token"]).result == "accept"
    assert switch.retry(free.json()["id"]).json()["tokens"] == [tok]
    twice = switch.buy(pan, 0)
    assert twice.status_code == 400 and twice.json()["errorType"] == "NO_FREE_UNITS_DUE"
    assert switch.lookup(pan).json()["bsstDue"] is False
    paid = switch.buy(pan, 10000).json()  # a paid sale the same month: no second free token
    assert [t["tokenType"] for t in paid["tokens"]] == ["STD"]
    # next month: due again, and it comes with the first purchase
    demo.clock.advance(days=31)
    assert switch.lookup(pan).json()["bsstDue"] is True
    month2 = switch.buy(pan, 10000).json()
    assert [(t["tokenType"], t["units"]) for t in month2["tokens"]][1] == ("BSST", 50)
    for t in month2["tokens"]:
        assert meter.enter(t["token"]).result == "accept"
    assert switch.buy(pan, 0).json()["errorType"] == "NO_FREE_UNITS_DUE"
    # a reversed free-units claim gives the month's entitlement back (the sale's reversal)
    demo.clock.advance(days=31)
    claim = switch.buy(pan, 0).json()
    assert [t["tokenType"] for t in claim["tokens"]] == ["BSST"]
    assert switch.lookup(pan).json()["bsstDue"] is False
    assert switch.reverse(claim["id"]).status_code == 202
    assert switch.lookup(pan).json()["bsstDue"] is True
    # a meter whose tariff has no free units
    none = switch.buy(known_pan(), 0)
    assert none.status_code == 400 and none.json()["errorType"] == "NO_FREE_UNITS_DUE"
