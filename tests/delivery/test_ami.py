"""AMI end to end: sale -> outbox -> MQTT (real Mosquitto) -> virtual meter -> status ->
the purchase's delivery `accepted` with the meter's result."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.delivery.helpers import fast_config, meter_file, start_dispatcher, start_fleet
from tests.fixtures import Demo
from tests.support.carriers import Broker
from tests.support.waiting import wait_for


def delivery_of(demo: Demo, pid: str) -> list[dict[str, Any]]:
    r = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor"))
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["delivery"]
    return out


def test_sale_reaches_the_meter_and_is_accepted(demo: Demo, broker: Broker,
                                                tmp_path: Path) -> None:
    pan = demo.meters[0]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        wait_for(lambda: pan in fleet.connected, what="the meter to connect")
        pid = str(uuid.uuid4())
        r = demo.buy(pan, "100", pid=pid)
        assert r.status_code == 201, r.text
        first = delivery_of(demo, pid)
        assert [d["channel"] for d in first] == ["ami"]
        # (the meter may answer before the dispatcher has recorded its send: wait for both)
        done = wait_for(lambda: [d for d in delivery_of(demo, pid)
                                 if d["status"] == "accepted" and d["attempts"]],
                        what="accepted")
        d = done[0]
        assert d["meter_result"]["token_status"] == "TOKEN_EXECUTION_OK"
        assert d["meter_result"]["tokens"][0]["result"] == "accept"
        assert d["attempts"] == 1
        units = r.json()["receipt"]["units"]
        meter = fleet.meters[pan].meter
        assert str(meter.state.memory.registers["electricity"]) == units
    finally:
        disp.stop()
        fleet.stop()


def test_key_change_then_credit_over_ami(demo: Demo, broker: Broker, tmp_path: Path) -> None:
    """A sale that changes the meter's key: the meter gets the KCTs, then the credit made
    under the new key, in one message, and accepts them all; the next sale (new key only)
    is accepted too."""
    from sts.vending.registry.admin import DEMO_SGC

    pan = demo.meters[1]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        demo.registry.add_key(DEMO_SGC, 2, base_date=2014, table_set="sample",
                              make_current=True)
        pid = str(uuid.uuid4())
        r = demo.buy(pan, "50", pid=pid)
        assert r.status_code == 201, r.text
        kinds = [t["kind"] for t in r.json()["tokens"]]
        assert kinds[:2] == ["KCT", "KCT"] and kinds[-1] == "STD"
        d = wait_for(lambda: [x for x in delivery_of(demo, pid) if x["status"] == "accepted"],
                     what="the key change sale accepted")[0]
        results = [t["result"] for t in d["meter_result"]["tokens"]]
        assert results == ["key_change_1", "accept", "accept"]
        assert fleet.meters[pan].meter.state.memory.key.krn == 2
        pid2 = str(uuid.uuid4())
        assert demo.buy(pan, "20", pid=pid2).status_code == 201
        wait_for(lambda: [x for x in delivery_of(demo, pid2) if x["status"] == "accepted"],
                 what="the sale after the key change accepted")
        # an engineering token for the same meter, pushed over AMI too
        r = demo.client.post(f"/v1/engineering/{uuid.uuid4()}", headers=demo.h("engineer"),
                             json={"meter": pan, "type": "clear_tamper", "reason": "WO-1"})
        assert r.status_code == 201, r.text
        eng_id = r.json()["request_id"]
        r = demo.client.get(f"/v1/deliveries?purchase_id={eng_id}", headers=demo.h("engineer"))
        assert [x["channel"] for x in r.json()["deliveries"]] == ["ami"]
        wait_for(lambda: demo.client.get(f"/v1/deliveries?purchase_id={eng_id}",
                                         headers=demo.h("engineer")).json()["deliveries"][0]
                 ["status"] == "accepted", what="the engineering token accepted")
    finally:
        disp.stop()
        fleet.stop()


def test_offline_meter_gets_its_tokens_when_it_connects(demo: Demo, broker: Broker,
                                                        tmp_path: Path) -> None:
    """A meter that has never connected (no session at the broker) and one that went offline
    (persistent session): both get the tokens sold meanwhile when they connect."""
    pans = demo.meters[2:4]
    path = meter_file(demo.service, tmp_path, pans)
    state = tmp_path / "state"
    fleet = start_fleet(broker, path, state, only={pans[1]})
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        wait_for(lambda: pans[1] in fleet.connected, what="the second meter online")
        fleet.stop()  # the second meter goes offline; its session stays at the broker
        pids = [str(uuid.uuid4()), str(uuid.uuid4())]
        for pan, pid in zip(pans, pids, strict=True):
            assert demo.buy(pan, "30", pid=pid).status_code == 201
        wait_for(lambda: all(delivery_of(demo, p)[0]["status"] == "sent" for p in pids),
                 what="both sent to the broker")
        fleet = start_fleet(broker, path, state)
        for pid in pids:
            def accepted(pid: str = pid) -> bool:
                return bool(delivery_of(demo, pid)[0]["status"] == "accepted")

            wait_for(accepted, what="accepted after the meter connected")
        for pan in pans:
            assert fleet.meters[pan].meter.state.memory.registers["electricity"] > 0
    finally:
        disp.stop()
        fleet.stop()


def test_used_after_accepted_stays_accepted_and_rejections_are_listed(
        demo: Demo, broker: Broker, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from sts.cli import cli

    pans = demo.meters[:2]
    path = Path(meter_file(demo.service, tmp_path, pans))
    # the second meter holds a wrong decoder key: it will reject (Reject-x)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[1]["decoder_key"] = "00" * 8
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    fleet = start_fleet(broker, str(path), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        good, bad = str(uuid.uuid4()), str(uuid.uuid4())
        assert demo.buy(pans[0], "40", pid=good).status_code == 201
        assert demo.buy(pans[1], "40", pid=bad).status_code == 201
        wait_for(lambda: delivery_of(demo, good)[0]["status"] == "accepted", what="accepted")
        d = wait_for(lambda: [x for x in delivery_of(demo, bad) if x["status"] == "rejected"],
                     what="rejected")[0]
        assert "Reject" in d["reason"] and "AUTHENTICATION_FAILURE" in d["reason"]
        # the operator's list
        r = demo.client.get("/v1/deliveries?status=rejected", headers=demo.h("supervisor"))
        assert r.status_code == 200
        assert [x["request_id"] for x in r.json()["deliveries"]] == [bad]
        out = CliRunner().invoke(cli, ["deliver", "list", "--status", "rejected", "--db",
                                       demo.service.db.url, "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output.splitlines()[0])["request_id"] == bad
        # resend the accepted sale over AMI: the meter answers Used; the job is accepted
        r = demo.client.post(f"/v1/purchases/{good}/deliveries", json={"channel": "ami"},
                             headers=demo.h("vendor"))
        assert r.status_code == 202, r.text
        again = r.json()["id"]
        d2 = wait_for(lambda: [x for x in delivery_of(demo, good)
                               if x["id"] == again and x["status"] == "accepted"],
                      what="the re-delivery accepted")[0]
        assert d2["meter_result"]["tokens"][0]["result"] == "used"
        assert d2["resend_of"] is not None
        # a late duplicate answer for the first job leaves it accepted
        first = delivery_of(demo, good)[0]
        assert first["status"] == "accepted"
        units = fleet.meters[pans[0]].meter.state.memory.registers["electricity"]
        assert str(units) == demo.client.get(f"/v1/purchases/{good}", headers=demo.h(
            "vendor")).json()["receipt"]["units"]  # credited once
    finally:
        disp.stop()
        fleet.stop()


def test_status_only_from_the_jobs_own_meter(demo: Demo, broker: Broker) -> None:
    """Garbage and a status published under another meter's topic change nothing; the
    meter's own answer does (a plain MQTT client stands in for the meter)."""
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    disp = start_dispatcher(demo.service, fast_config(broker.url))
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        pan, other = demo.meters[0], demo.meters[1]
        pid = str(uuid.uuid4())
        assert demo.buy(pan, "10", pid=pid).status_code == 201
        job = wait_for(lambda: [d for d in delivery_of(demo, pid) if d["status"] == "sent"],
                       what="sent")[0]
        answer = {"v": 1, "id": str(job["id"]), "purchase_id": pid, "token_status":
                  "TOKEN_EXECUTION_OK", "results": [{"result": "accept", "code": 1,
                                                     "display": "Accept", "position": 0}]}
        for topic, payload in ((f"sts/v1/meters/{other}/status", json.dumps(answer)),
                               (f"sts/v1/meters/{pan}/status", "not json"),
                               (f"sts/v1/meters/{pan}/status", json.dumps(
                                   answer | {"id": "9" * 40}))):
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        # the two well-formed ones reach the dispatcher (the garbage stops at the carrier)
        wait_for(lambda: disp.handled >= 2, what="the messages handled")
        assert delivery_of(demo, pid)[0]["status"] == "sent"
        pub.publish(f"sts/v1/meters/{pan}/status", json.dumps(answer), qos=1) \
            .wait_for_publish(5)
        wait_for(lambda: delivery_of(demo, pid)[0]["status"] == "accepted", what="accepted")
    finally:
        pub.loop_stop()
        pub.disconnect()
        disp.stop()
