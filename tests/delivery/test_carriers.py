"""SMS through a real HTTP gateway stand-in and e-mail to a real SMTP server (aiosmtpd):
content, retry after a 500, permanent failure with its reason, resend (audited), and bad
delivery input refused with nothing stored."""

from __future__ import annotations

import json
import uuid
from email import message_from_bytes
from typing import Any

from sts.delivery.worker import Dispatcher
from tests.delivery.helpers import fast_config
from tests.fixtures import Demo
from tests.support.carriers import Gateway, Mailbox
from tests.support.waiting import wait_for


def dispatcher(demo: Demo, gateway: Gateway | None = None,
               mailbox: Mailbox | None = None) -> Dispatcher:
    cfg = fast_config()
    if gateway is not None:
        cfg.sms.url = gateway.url
        cfg.sms.fields = {"msisdn": "{to}", "message": "{text}", "from": "{sender}",
                          "ref": "{purchase_id}"}
    if mailbox is not None:
        cfg.email.host, cfg.email.port = "127.0.0.1", mailbox.port
        cfg.email.sender = "tokens@utility.example"
    return Dispatcher.from_config(demo.service.db, cfg)


def delivery(demo: Demo, pid: str) -> list[dict[str, Any]]:
    r = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor"))
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["delivery"]
    return out


def run_until(disp: Dispatcher, demo: Demo, pid: str, status: str,
              channel: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        disp.run_once()
        for d in delivery(demo, pid):
            if d["channel"] == channel and d["status"] == status:
                return d
        return None

    found: dict[str, Any] = wait_for(done, what=f"{channel} {status}")
    return found


def group4(token: str) -> str:
    return " ".join(token[i:i + 4] for i in range(0, 20, 4))


def test_sms_content_and_retry_after_500(demo: Demo, gateway: Gateway) -> None:
    gateway.script = [(500, "temporarily unavailable")]
    disp = dispatcher(demo, gateway)
    pid = str(uuid.uuid4())
    r = demo.buy(demo.meters[0], "100", pid=pid,
                 deliver=[{"channel": "sms", "to": "+27 82 555 0101", "lang": "af"}])
    assert r.status_code == 201, r.text
    sale = r.json()
    assert {d["channel"] for d in delivery(demo, pid)} == {"ami", "sms"}  # AMI meter: ami too
    d = run_until(disp, demo, pid, "delivered", "sms")
    assert d["attempts"] == 2 and d["to"] == "+27825550101" and "reason" not in d
    assert len(gateway.requests) == 2  # the 500, then the 200
    body = json.loads(gateway.requests[-1]["body"])
    assert body["msisdn"] == "+27825550101" and body["ref"] == pid and body["from"] == "STS"
    token = sale["tokens"][0]["token"]
    assert group4(token) in body["message"]
    assert sale["receipt"]["units"] in body["message"] and "kWh" in body["message"]
    assert f"Kwitansie {sale['receipt']['receipt_no']}" in body["message"]
    # both attempts carried the same message (a retry is the same message)
    assert json.loads(gateway.requests[0]["body"]) == body
    assert gateway.requests[0]["headers"]["Idempotency-Key"] == \
        gateway.requests[1]["headers"]["Idempotency-Key"]
    disp.stop()


def test_permanent_failure_is_failed_with_reason(demo: Demo, gateway: Gateway) -> None:
    gateway.script = [(400, '{"error": "unknown subscriber"}')]
    disp = dispatcher(demo, gateway)
    pid = str(uuid.uuid4())
    assert demo.buy(demo.meters[1], "20", pid=pid,
                    deliver=[{"channel": "sms", "to": "+27825550199"}]).status_code == 201
    d = run_until(disp, demo, pid, "failed", "sms")
    assert "400" in d["reason"] and "unknown subscriber" in d["reason"] and d["attempts"] == 1
    r = demo.client.get("/v1/deliveries?status=failed", headers=demo.h("admin"))
    assert [x["request_id"] for x in r.json()["deliveries"]] == [pid]
    # retries that never succeed end as failed too, with the last error
    gateway.script = [(503, "down")] * 10
    pid2 = str(uuid.uuid4())
    assert demo.buy(demo.meters[1], "20", pid=pid2,
                    deliver=[{"channel": "sms", "to": "+27825550199"}]).status_code == 201
    d2 = run_until(disp, demo, pid2, "failed", "sms")
    assert d2["attempts"] == 4 and "503" in d2["reason"]
    disp.stop()


def test_email_with_slip_and_resend(demo: Demo, mailbox: Mailbox) -> None:
    from sqlalchemy import select

    from sts.vending.storage.tables import audit_log

    disp = dispatcher(demo, mailbox=mailbox)
    pid = str(uuid.uuid4())
    r = demo.buy(demo.meters[2], "75", pid=pid,
                 deliver=[{"channel": "email", "to": "ann@example.org"}])
    assert r.status_code == 201, r.text
    sale = r.json()
    run_until(disp, demo, pid, "delivered", "email")
    assert len(mailbox.messages) == 1
    env = mailbox.messages[0]
    assert env.rcpt_tos == ["ann@example.org"] and env.mail_from == "tokens@utility.example"
    msg = message_from_bytes(env.content)
    assert sale["receipt"]["receipt_no"] in msg["Subject"]
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)  # a single part
    text = body.decode()
    assert group4(sale["tokens"][0]["token"]) in text
    from sts.vending.receipts import money_style_of

    written = money_style_of(sale["receipt"]).amount(sale["receipt"]["amount"])  # R 75,00
    assert "TAX INVOICE" in text and written in text
    # "I lost my e-mail": resend (default: the same address), audited
    r = demo.client.post(f"/v1/purchases/{pid}/deliveries", json={"channel": "email"},
                         headers=demo.h("vendor"))
    assert r.status_code == 202, r.text
    assert r.json()["to"] == "ann@example.org" and r.json()["status"] == "pending"
    wait_for(lambda: (disp.run_once(), len(mailbox.messages) == 2)[1], what="second e-mail")
    again = message_from_bytes(mailbox.messages[1].content).get_payload(decode=True)
    assert isinstance(again, bytes) and again.decode() == text
    with demo.service.db.read() as conn:
        actions = [r.action for r in conn.execute(
            select(audit_log.c.action).where(audit_log.c.subject == pid))]
    assert "delivery.resend" in actions
    # another vendor's sale, or an unknown one, cannot be resent
    r = demo.client.post(f"/v1/purchases/{uuid.uuid4()}/deliveries",
                         json={"channel": "email", "to": "x@example.org"},
                         headers=demo.h("vendor"))
    assert r.status_code == 404
    disp.stop()


def test_bad_delivery_input_refuses_the_sale_and_stores_nothing(demo: Demo) -> None:
    from tests.fixtures import known_pan

    cases = [
        ([{"channel": "sms", "to": "12"}], "deliver.0.to"),
        ([{"channel": "email", "to": "not-an-address"}], "deliver.0.to"),
        ([{"channel": "fax", "to": "+27825550101"}], "deliver.0.channel"),
        ([{"channel": "sms"}], "deliver.0.to"),
        ([{"channel": "ami", "to": "+27825550101"}], "deliver.0.to"),
        # the /v1 schema: strict types, lengths, at most 6 channels, no unknown fields
        ([{"channel": "sms", "to": 27825550101}], "deliver.0.to"),
        ([{"channel": "email", "to": "a" * 250 + "@x.co"}], "deliver.0.to"),
        ([{"channel": "sms", "to": "+27825550101", "cc": "x"}], "deliver.0.cc"),
        ([{"channel": "ami"}] * 7, "deliver"),
        ({"channel": "ami"}, "deliver"),
    ]
    for deliver, field in cases:
        pid = str(uuid.uuid4())
        r = demo.buy(demo.meters[0], "10", pid=pid, deliver=deliver)
        assert r.status_code == 422, (deliver, r.text)
        assert r.json()["field"] == field
        assert demo.client.get(f"/v1/purchases/{pid}",
                               headers=demo.h("vendor")).status_code == 404
    # ami to a meter that is not AMI-connected: refused, nothing stored
    pid = str(uuid.uuid4())
    r = demo.buy(known_pan(), "10", pid=pid, deliver=[{"channel": "ami"}])
    assert r.status_code == 422 and r.json()["field"] == "deliver.0.channel"
    assert demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor")).status_code == 404
    trial = demo.client.post("/v1/trials", json={"meter": known_pan(), "amount": "10",
                                                 "deliver": [{"channel": "ami"}]},
                             headers=demo.h("vendor"))
    assert trial.status_code == 422 and trial.json()["field"] == "deliver.0.channel"
    # without "deliver", a meter that is not AMI-connected has no delivery jobs
    pid = str(uuid.uuid4())
    assert demo.buy(known_pan(), "10", pid=pid).status_code == 201
    assert delivery(demo, pid) == []
    # "deliver" is not part of the request's identity: a repeat answers as stored, adds no job
    again = demo.buy(known_pan(), "10", pid=pid,
                     deliver=[{"channel": "sms", "to": "+27825550101"}])
    assert again.status_code == 200 and delivery(demo, pid) == []


def test_reversed_sale_is_never_delivered(demo: Demo, gateway: Gateway) -> None:
    disp = dispatcher(demo, gateway)
    pid = str(uuid.uuid4())
    assert demo.buy(demo.meters[3], "10", pid=pid,
                    deliver=[{"channel": "sms", "to": "+27825550101"}]).status_code == 201
    r = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "customer left"},
                         headers=demo.h("supervisor"))
    assert r.status_code == 201, r.text
    d = run_until(disp, demo, pid, "failed", "sms")
    assert "reversed" in d["reason"]
    assert gateway.requests == []
    disp.stop()
