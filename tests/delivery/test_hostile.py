"""Trust at the edges (issue 17): whatever can publish to the broker is hostile.

One message must not stop AMI delivery (a deep nest raised RecursionError on the network
thread, which died with the message unacknowledged, so a restarted server died the same
way); a dead network thread is noticed and restarted; a meter's status moves only its own
AMI jobs that were sent, forward; and 5,000 random and hostile messages on the status topics
while sales flow leave every AMI job accepted exactly once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sts.delivery import answers, topics
from sts.delivery.ami_mqtt import AmiCarrier
from sts.delivery.worker import Dispatcher
from sts.vending import outbox
from tests.delivery.helpers import fast_config, meter_file, start_dispatcher, start_fleet
from tests.fixtures import Demo
from tests.support.carriers import Broker
from tests.support.waiting import wait_for

ACCEPT = [{"position": 0, "result": "accept", "code": 1, "display": "Accept",
           "token_status": "TOKEN_EXECUTION_OK"}]
REJECT = [{"position": 0, "result": "reject", "code": 13, "display": "Reject-x",
           "token_status": "AUTHENTICATION_FAILURE"}]


def answer(job_id: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"v": 1, "id": str(job_id), "token_status": results[-1].get("token_status"),
            "results": results}


def jobs_of(demo: Demo, pid: str) -> dict[str, dict[str, Any]]:
    with demo.service.db.read() as conn:
        return {j["channel"]: j for j in outbox.for_request(conn, pid)}


@pytest.fixture
def forger(broker: Broker) -> Iterator[mqtt.Client]:
    """A plain MQTT client on the (anonymous) test broker: anyone at all."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    yield c
    c.loop_stop()
    c.disconnect()


def carrier(disp: Dispatcher) -> AmiCarrier:
    ami = disp.carriers["ami"]
    assert isinstance(ami, AmiCarrier)
    return ami


# --- parsing --------------------------------------------------------------------------------


HOSTILE = [
    b"[" * 5000, b"{\"a\":" * 5000, b"[" * 100_000, b"\xff\xfe\xfd", b"\xed\xa0\x80",
    b"\"" * 60_000, b"\"\\\"" * 20_000, b"{\"v\": 1, \"x\": \"" + b"a" * 70_000 + b"\"}",
    b"{\"v\": 1, \"n\": 1e999}", b"{\"v\": 1, \"n\": NaN}", b"{\"v\": 1, \"n\": -Infinity}",
    b"{\"v\": 1, \"n\": " + b"9" * 5000 + b"}", b"{\"v\": 1" + b", \"k\": [1]" * 9000 + b"}",
    b"[1, 2]", b"\"v\"", b"null", b"{\"v\": 2}", b"{\"v\": true}", b"", b"\x00" * 100,
    b"{\"v\": 1, \"x\": " + b"[" * 9 + b"]" * 9 + b"}",
]


def test_parse_refuses_what_it_cannot_bound() -> None:
    for payload in HOSTILE:
        assert topics.decode(payload) is None, payload[:40]
        with pytest.raises(topics.Refused):
            topics.parse(payload)
    ok = b"{\"v\": 1, \"id\": \"7\", \"s\": \"[[[[[[[[[[[[[\\\"\", \"x\": " + b"[" * 7 + \
        b"]" * 7 + b"}"
    assert topics.parse(ok)["id"] == "7"
    assert topics.pan_of("sts/v1/meters/" + "\u0660" * 18 + "/status") is None  # not ASCII


# --- one message, the network thread ---------------------------------------------------------


def test_one_message_does_not_stop_ami_delivery(demo: Demo, broker: Broker, forger: mqtt.Client,
                                                tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """`[` x 5,000 on a meter's status topic: refused, logged once (without its content),
    acknowledged (a restarted dispatcher on the same session does not get it again), and
    sales keep reaching the meters."""
    caplog.set_level(logging.WARNING, logger="sts.delivery")
    pan = demo.meters[0]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    cfg = fast_config(broker.url)
    cfg.ami.client_id = "sts-test-poison"
    disp = start_dispatcher(demo.service, cfg)
    try:
        assert carrier(disp).wait_connected(20)
        forger.publish(topics.status_topic(pan), b"[" * 5000, qos=1).wait_for_publish(10)
        pid = str(uuid.uuid4())  # its answer comes after the poison, on the same connection
        assert demo.buy(pan, "10", pid=pid).status_code == 201
        wait_for(lambda: jobs_of(demo, pid)["ami"]["status"] == "accepted", 30, "accepted")
        assert carrier(disp).refused == 1 and carrier(disp).alive()
        disp.stop()
        disp = start_dispatcher(demo.service, cfg)  # same session: nothing left to replay
        pid = str(uuid.uuid4())
        assert demo.buy(pan, "10", pid=pid).status_code == 201
        wait_for(lambda: jobs_of(demo, pid)["ami"]["status"] == "accepted", 30,
                 "accepted after the restart")
        assert carrier(disp).refused == 0
    finally:
        disp.stop()
        fleet.stop()
    lines = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert len(lines) == 1 and "[[" not in lines[0] and pan in lines[0], lines


def test_dead_network_thread_is_restarted(demo: Demo, broker: Broker, forger: mqtt.Client,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The MQTT network thread is made to die (an exception escapes a callback): the
    dispatcher notices, starts a new client on the same session, the message that killed
    the old one comes again and is handled, and delivery goes on."""
    pan = demo.meters[1]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    ami = carrier(disp)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # (expected: quiet)
    try:
        assert ami.wait_connected(20)

        def die(*_: Any) -> None:
            raise RuntimeError("simulated crash in the network thread")

        old = ami.client
        old.on_message = die
        forger.publish(topics.online_topic(pan), json.dumps({"v": 1, "meter": pan}),
                       qos=1).wait_for_publish(10)
        pid = str(uuid.uuid4())
        assert demo.buy(pan, "10", pid=pid).status_code == 201
        wait_for(lambda: jobs_of(demo, pid)["ami"]["status"] == "accepted", 30, "accepted")
        assert ami.restarts == 1 and ami.client is not old and ami.alive()
        wait_for(lambda: disp.handled >= 1, 20, "the message handled by the new client")
    finally:
        disp.stop()
        fleet.stop()


class _Die(BaseException):
    """Escapes the loops' `except Exception`: the thread ends."""


def test_dead_dispatcher_loop_is_restarted(demo: Demo, broker: Broker, forger: mqtt.Client,
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pan = demo.meters[2]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    real = disp.drain_incoming
    calls = {"n": 0}

    def drain_once_dying(*a: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise _Die
        return real(*a, **kw)

    monkeypatch.setattr(disp, "drain_incoming", drain_once_dying)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # (expected: quiet)
    try:
        pid = str(uuid.uuid4())
        assert demo.buy(pan, "10", pid=pid).status_code == 201
        wait_for(lambda: jobs_of(demo, pid)["ami"]["status"] == "accepted", 30,
                 "accepted after the status loop was restarted")
        assert calls["n"] >= 2
    finally:
        disp.stop()
        fleet.stop()


# --- whose jobs a status may move ---------------------------------------------------------------


def test_a_meter_answers_only_its_own_sent_ami_jobs_forward(demo: Demo) -> None:
    db, now = demo.service.db, outbox_now()
    pan, other = demo.meters[0], demo.meters[1]
    pid = str(uuid.uuid4())
    assert demo.buy(pan, "10", pid=pid, deliver=[
        {"channel": "sms", "to": "+27825550101"},
        {"channel": "email", "to": "ann@example.org"}]).status_code == 201
    jobs = jobs_of(demo, pid)

    def apply(meter: str, job: str, results: list[dict[str, Any]]) -> str | None:
        with db.begin() as conn:
            return answers.apply_meter_status(db, conn, meter, answer(jobs[job]["id"], results),
                                              now)

    # the sale's SMS and e-mail jobs (their ids are in every tokens message): not the meter's
    assert apply(pan, "sms", ACCEPT) is None and apply(pan, "email", ACCEPT) is None
    # its own AMI job, never sent: no skipping from pending
    assert apply(pan, "ami", ACCEPT) is None
    after = jobs_of(demo, pid)
    assert {c: (j["status"], "meter_result" in j) for c, j in after.items()} == {
        "ami": ("pending", False), "sms": ("pending", False), "email": ("pending", False)}
    # claimed by a dispatcher (going out this moment): the answer waits for the send
    with db.begin() as conn:
        claimed = outbox.claim(db, conn, now, lease=outbox_lease(), limit=10)
    ami_job = next(j for j in claimed if j.channel == "ami")
    assert apply(pan, "ami", ACCEPT) == answers.IN_FLIGHT
    assert jobs_of(demo, pid)["ami"]["status"] == "pending"
    with db.begin() as conn:
        outbox.finish_sent(conn, ami_job, now, status="sent", detail="test", answer_by=now)
    # another meter cannot answer it; the meter itself can, once, and only forward
    assert apply(other, "ami", REJECT) is None
    assert jobs_of(demo, pid)["ami"]["status"] == "sent"
    assert apply(pan, "ami", ACCEPT) == "accepted"
    assert apply(pan, "ami", REJECT) == "accepted"
    done = jobs_of(demo, pid)["ami"]
    assert done["status"] == "accepted" and done["meter_result"]["display"] == "Accept"
    # rejected stays rejected
    pid2 = str(uuid.uuid4())
    assert demo.buy(pan, "10", pid=pid2).status_code == 201
    with db.begin() as conn:
        for job in outbox.claim(db, conn, now, lease=outbox_lease(), limit=10):
            if job.request_id == pid2:
                outbox.finish_sent(conn, job, now, status="sent", detail="test",
                                   answer_by=now)
    jobs = jobs_of(demo, pid2)
    assert apply(pan, "ami", REJECT) == "rejected"
    assert apply(pan, "ami", ACCEPT) == "rejected"
    assert jobs_of(demo, pid2)["ami"]["status"] == "rejected"
    with db.read() as conn:
        meter_rows = conn.exec_driver_sql(
            "SELECT count(*) FROM delivery_attempts WHERE outcome = 'meter'").scalar()
    assert meter_rows == 2  # one per change; the refused answers wrote nothing


def outbox_now() -> Any:
    from sts.delivery.worker import utc_now

    return utc_now()


def outbox_lease() -> Any:
    from datetime import timedelta

    return timedelta(seconds=60)


def test_forged_status_for_the_sales_sms_and_email_jobs(demo: Demo, broker: Broker,
                                                        forger: mqtt.Client,
                                                        tmp_path: Path) -> None:
    """The attack of issue 17 over MQTT: a status on the meter's own topic naming the sale's
    SMS and e-mail job ids (sequential; in every tokens message) leaves them pending."""
    pan = demo.meters[3]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        assert carrier(disp).wait_connected(20)
        pid = str(uuid.uuid4())
        assert demo.buy(pan, "10", pid=pid, deliver=[
            {"channel": "sms", "to": "+27825550101"},
            {"channel": "email", "to": "ann@example.org"}]).status_code == 201
        wait_for(lambda: jobs_of(demo, pid)["ami"]["status"] == "accepted", 30, "accepted")
        seen = disp.handled
        jobs = jobs_of(demo, pid)
        for channel in ("sms", "email"):
            forger.publish(topics.status_topic(pan), json.dumps(answer(jobs[channel]["id"],
                                                                       ACCEPT)),
                           qos=1).wait_for_publish(10)
        wait_for(lambda: disp.handled >= seen + 2, 20, "the forged answers handled")
        after = jobs_of(demo, pid)
        for channel in ("sms", "email"):
            assert after[channel]["status"] == "pending", after[channel]
            assert "meter_result" not in after[channel]
    finally:
        disp.stop()
        fleet.stop()


# --- the fuzz ------------------------------------------------------------------------------------

FUZZ_MESSAGES = 5000
FUZZ_SALES = 40
MARK = "FUZZ-PAYLOAD-MARK"  # in many payloads: must never reach a log line


class Hostile:
    """Random and hostile messages for the status topics (and others), built from what the
    test knows of the jobs so far: other meters' AMI job ids, SMS job ids, made-up ids."""

    def __init__(self, rng: random.Random, pans: list[str]) -> None:
        self.rng = rng
        self.pans = pans
        self.jobs: list[tuple[int, str, str]] = []  # (id, pan, channel), appended by sales

    def foreign_id(self, pan: str) -> int:
        """A job id this meter may not answer: another meter's, or not an AMI job."""
        choices = [j for j, p, c in self.jobs if p != pan or c != "ami"]
        return self.rng.choice(choices) if choices else 10**8 + self.rng.randrange(1000)

    def message(self) -> tuple[str, bytes, int, bool]:
        r = self.rng
        pan = r.choice(self.pans)
        topic = topics.status_topic(pan)
        retain = r.random() < 0.05
        kind = r.randrange(14)
        results: list[dict[str, Any]] = r.choice([ACCEPT, REJECT, [{"result": "accept"}] * 3])
        body: Any
        if kind == 0:  # huge: over our cap; some over the size we tell the broker we take
            size = r.choice([70_000, 200_000, 300_000])
            body = json.dumps({"v": 1, "id": "1", "x": MARK * (size // len(MARK))}).encode()
        elif kind == 1:  # deeply nested
            opener = r.choice([b"[", b"{\"a\":"])
            body = opener * r.choice([9, 50, 5000, 60_000])
        elif kind == 2:  # invalid UTF-8
            body = b"{\"v\": 1, \"id\": \"" + bytes([0xff, 0xc0, 0x80]) + MARK.encode() + b"\"}"
        elif kind == 3:  # wrong types everywhere
            body = json.dumps({"v": 1, "id": r.choice([7, ["1"], {"x": 1}, None, "1.5", "-1",
                                                       "\u0661\u0662", "1" * 40]),
                               "results": r.choice(["accept", {"0": ACCEPT[0]}, [1, 2],
                                                    [[MARK]], None, [None] * 40]),
                               "token_status": [MARK]}).encode()
        elif kind in (4, 5, 6):  # well formed, naming a job this meter may not answer
            body = json.dumps(answer(self.foreign_id(pan), results) | {"m": MARK}).encode()
        elif kind == 7:  # the results of a real answer, poisoned
            body = json.dumps({"v": 1, "id": str(self.foreign_id(pan)), "results": [
                {"result": ["accept"], "display": {"x": MARK}, "amount": 1e308,
                 "position": 10**40}] * r.randrange(1, 40)}).encode()
        elif kind == 8:  # another version, or no version
            body = json.dumps({"v": r.choice([0, 2, "1", None]), "id": "1",
                               "results": ACCEPT}).encode()
        elif kind == 9:  # other topics of the tree, and outside it
            topic = r.choice([f"sts/v1/meters/{pan}/tokens", f"sts/v2/meters/{pan}/status",
                              f"sts/v1/meters/{pan[:-1]}/status", "sts/v1/meters/x/status",
                              f"sts/v1/meters/{pan}/online/x", f"sts/v1/meters/{pan}/Status",
                              "sts/v1/meters/" + "\u0661" * 18 + "/status", "x/y/z"])
            body = json.dumps(answer(self.foreign_id(pan), ACCEPT)).encode()
        elif kind == 10:  # online, with junk
            topic = topics.online_topic(pan)
            body = r.choice([b"[" * 3000, b"{\"v\": 1}", b"\xff", b"{}"])
        elif kind == 11:  # random bytes
            body = r.randbytes(r.randrange(0, 2000))
        elif kind == 12:  # numbers that break JSON on the way out
            body = (b"{\"v\": 1, \"id\": \"" + str(self.foreign_id(pan)).encode()
                    + b"\", \"at\": 1e999, \"results\": [{\"result\": \"accept\"}]}")
        else:  # empty and tiny
            body = r.choice([b"", b"{", b"\"", b"{\"v\": 1, \"id\": \"\"}"])
        return topic, body, r.choice([0, 1, 1]), retain


@pytest.mark.slow
def test_fuzz_5000_hostile_messages_while_sales_flow(
        demo: Demo, broker: Broker, forger: mqtt.Client, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sts.delivery")
    started = time.monotonic()
    pans = demo.meters
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, pans), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    hostile = Hostile(random.Random(17), pans)
    units: dict[str, Decimal] = dict.fromkeys(pans, Decimal(0))
    pids: list[str] = []
    sent = threading.Event()
    failure: list[BaseException] = []

    def publish_all() -> None:
        try:
            pending = []
            for n in range(FUZZ_MESSAGES):
                topic, body, qos, retain = hostile.message()
                info = forger.publish(topic, body, qos=qos, retain=retain)
                if qos:
                    pending.append(info)
                if n % 100 == 99:  # keep the client's queue short
                    for info in pending:
                        info.wait_for_publish(30)
                    pending.clear()
            for info in pending:
                info.wait_for_publish(30)
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)
        finally:
            sent.set()

    try:
        wait_for(lambda: len(fleet.connected) == len(pans), 30, "all meters online")
        assert carrier(disp).wait_connected(20)
        publisher = threading.Thread(target=publish_all, name="fuzz-publisher", daemon=True)
        publisher.start()
        n = 0
        while n < FUZZ_SALES or (not sent.is_set() and n < 10 * FUZZ_SALES):
            n += 1  # (sales go on for as long as the fuzz does)
            pan = pans[n % len(pans)]
            pid = str(uuid.uuid4())
            deliver = [{"channel": "sms", "to": "+27825550101"}] if n % 3 == 0 else []
            r = demo.buy(pan, "10", pid=pid, deliver=deliver)
            assert r.status_code == 201, r.text
            units[pan] += Decimal(r.json()["receipt"]["units"])
            pids.append(pid)
            hostile.jobs.extend((j["id"], pan, c) for c, j in jobs_of(demo, pid).items())
        assert sent.wait(180), "the fuzz messages were not all published in time"
        assert not failure, failure
        refused_before = carrier(disp).refused

        def all_accepted() -> bool:
            return all(jobs_of(demo, pid)["ami"]["status"] == "accepted" for pid in pids)

        wait_for(all_accepted, 120, "every AMI job accepted")
        # every fuzz message was dealt with (refused by the carrier, or handled and ignored)
        wait_for(lambda: carrier(disp).refused + disp.handled >= FUZZ_MESSAGES // 2, 60,
                 "the fuzz messages dealt with")
        assert carrier(disp).alive() and carrier(disp).restarts == 0
        assert refused_before > 0
    finally:
        disp.stop()
        fleet.stop()
    with demo.service.db.read() as conn:
        for pid in pids:
            jobs = jobs_of(demo, pid)
            assert jobs["ami"]["meter_result"]["tokens"][0]["result"] == "accept", pid
            if "sms" in jobs:
                assert jobs["sms"]["status"] == "pending" and "meter_result" not in jobs["sms"]
            changes = conn.exec_driver_sql(
                "SELECT count(*) FROM delivery_attempts WHERE outcome = 'meter' "
                f"AND delivery_id = {int(jobs['ami']['id'])}").scalar()
            assert changes == 1, (pid, changes)  # accepted exactly once
    for pan in pans:  # each credit entered exactly once
        assert fleet.meters[pan].meter.state.memory.registers["electricity"] == units[pan]
    # the log: rate-limited, and never what a message carried
    lines = [r.getMessage() for r in caplog.records]
    assert not any(MARK in line for line in lines)
    refusals = [line for line in lines if "refused a message" in line]
    windows = int((time.monotonic() - started) // 60) + 1  # RateLimitedLog: 20 a minute
    assert 0 < len(refusals) <= 20 * windows, len(refusals)
