"""M-Pesa C2B paybill on the HTTP face: validation answers, confirmations sold exactly once
(also under concurrency), hostile input refused field by field, foreign networks refused, and
GET /v1/payments (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_delivery import deliveries
from sts.vending.storage.tables_payments import payments
from tests.payments.conftest import Momo, confirmation

VALIDATE = "/pay/c2b/validation"
CONFIRM = "/pay/c2b/confirmation"
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}


def count(momo: Momo, table: Any, *where: Any) -> int:
    with momo.service.db.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))
                   or 0)


def spaced(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def test_validation(momo: Momo) -> None:
    meter = momo.meters[0]
    for ref in (meter, spaced(meter)):
        r = momo.client.post(VALIDATE, json=confirmation("RKV0000001", ref))
        assert r.status_code == 200 and r.json() == ACCEPTED
    mistyped = meter[:-1] + str((int(meter[-1]) + 1) % 10)  # a wrong check digit
    for ref in (mistyped, "12345", ""):
        r = momo.client.post(VALIDATE, json=confirmation("RKV0000002", ref))
        assert r.json() == {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}, ref
    for amount in ("1.00", "999999.00"):
        r = momo.client.post(VALIDATE, json=confirmation("RKV0000003", meter, amount))
        assert r.json()["ResultCode"] == "C2B00013"
    momo.demo.registry.set_meter_status(momo.meters[1], "blocked", "tamper")
    r = momo.client.post(VALIDATE, json=confirmation("RKV0000004", momo.meters[1]))
    assert r.json()["ResultCode"] == "C2B00016"
    assert count(momo, payments) == 0  # validation stores nothing


def test_confirmation_sells_once_and_texts_the_token(momo: Momo) -> None:
    body = confirmation("RKTQDM7W6S", spaced(momo.meters[0]))
    for _ in range(3):  # Daraja repeats a confirmation: nothing new
        r = momo.client.post(CONFIRM, json=body)
        assert r.status_code == 200 and r.json() == ACCEPTED
    assert count(momo, transactions, transactions.c.kind == "sale") == 1
    assert count(momo, deliveries, deliveries.c.channel == "sms",
                 deliveries.c.request_id == "mpesa-RKTQDM7W6S") == 1

    r = momo.client.get("/v1/payments", params={"provider": "mpesa",
                                                "provider_id": "RKTQDM7W6S"},
                        headers=momo.demo.h("auditor"))
    assert r.status_code == 200, r.text
    (p,) = r.json()["payments"]
    assert p["state"] == "sold" and p["amount"] == "100.00" and p["msisdn"] == "254722000111"
    assert p["sale"]["purchase_id"] == "mpesa-RKTQDM7W6S" and p["sale"]["receipt_no"]
    assert p["sale"]["tokens"][0]["token"]
    head = momo.demo.registry.add_api_key("supervisor", label="head office")
    # the demo supervisor is bound to Demo Vendor: the channel's payment is unknown to it
    for role, status in (("vendor", 403), ("engineer", 403), ("supervisor", 404),
                         ("admin", 200), (head, 200)):
        headers = {"Authorization": f"Bearer {head}"} if role == head else momo.demo.h(role)
        r = momo.client.get("/v1/payments", params={"provider": "mpesa",
                                                    "provider_id": "RKTQDM7W6S"},
                            headers=headers)
        assert r.status_code == status, role
    r = momo.client.get("/v1/payments", params={"provider": "mpesa", "provider_id": "NOPE1234"},
                        headers=momo.demo.h("admin"))
    assert r.status_code == 404 and r.json()["code"] == "UNKNOWN_RECORD"


def test_blocked_after_validation_is_an_exception(momo: Momo) -> None:
    meter = momo.meters[2]
    assert momo.client.post(VALIDATE, json=confirmation("RKBLOCK001", meter)).json() == ACCEPTED
    momo.demo.registry.set_meter_status(meter, "blocked", "tamper")
    r = momo.client.post(CONFIRM, json=confirmation("RKBLOCK001", meter))
    assert r.status_code == 200 and r.json() == ACCEPTED  # the money is recorded
    assert count(momo, transactions) == 0 and count(momo, deliveries) == 0
    r = momo.client.get("/v1/payments", params={"state": "exception"},
                        headers=momo.demo.h("admin"))
    (p,) = r.json()["payments"]
    assert p["provider_id"] == "RKBLOCK001" and p["reason"].startswith("METER_BLOCKED")
    assert p["purchase_id"] is None and "sale" not in p  # listings carry no sale

    # the back office settles it: an auditor may not; once unblocked, an admin sells it
    url = "/v1/payments/mpesa/RKBLOCK001/settlement"
    r = momo.client.post(url, json={"action": "sell", "reason": "x"},
                         headers=momo.demo.h("auditor"))
    assert r.status_code == 403
    r = momo.client.post(url, json={"action": "sell", "reason": "still blocked"},
                         headers=momo.demo.h("admin"))
    assert r.status_code == 200 and r.json()["state"] == "exception"
    momo.demo.registry.set_meter_status(meter, "active")
    r = momo.client.post(url, json={"action": "sell", "reason": "unblocked"},
                         headers=momo.demo.h("admin"))
    assert r.status_code == 200 and r.json()["state"] == "sold"
    assert count(momo, transactions) == 1
    r = momo.client.post(url, json={"action": "refund", "reason": "late"},
                         headers=momo.demo.h("admin"))
    assert r.status_code == 409 and r.json()["code"] == "PAYMENT_STATE"


@pytest.mark.parametrize("field,value", [
    ("TransID", "bad id!"), ("TransID", None), ("TransTime", "2025-03-03"),
    ("TransTime", "20251399000000"), ("TransAmount", "-5"), ("TransAmount", "1e3"),
    ("TransAmount", True), ("TransAmount", "10.001"), ("BusinessShortCode", "999999"),
    ("BillRefNumber", "x" * 65), ("MSISDN", ["254"]), ("FirstName", {"a": 1}),
])
def test_hostile_fields(momo: Momo, field: str, value: Any) -> None:
    body = confirmation("RKHOSTILE1", momo.meters[0]) | {field: value}
    r = momo.client.post(CONFIRM, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["ResultCode"] == "C2B00016"
    assert count(momo, payments) == 0


def test_not_json_and_foreign_network(momo: Momo) -> None:
    for content in (b"not json", b"[1, 2]", b"\xff\xfe"):
        r = momo.client.post(CONFIRM, content=content,
                             headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (content, r.status_code)
    r = momo.demo.client.post(CONFIRM, json=confirmation("RKFOREIGN1", momo.meters[0]))
    assert r.status_code == 403 and r.json()["code"] == "CALLBACK_REFUSED"
    assert count(momo, payments) == 0


@pytest.mark.slow
def test_concurrent_confirmations_sell_once_each(momo: Momo) -> None:
    """60 confirmations, 20 of them repeats of another's TransID -> 40 sales."""
    ids = [f"RKCONC{i:04d}" for i in range(40)]
    bodies = [confirmation(t, momo.meters[i % len(momo.meters)]) for i, t in enumerate(ids)]
    bodies += bodies[:20]

    def send(body: dict[str, Any]) -> int:
        return int(momo.client.post(CONFIRM, json=body).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, bodies))
    assert statuses == [200] * 60
    assert count(momo, transactions, transactions.c.kind == "sale") == 40
    assert count(momo, payments, payments.c.state == "sold") == 40
    assert count(momo, deliveries, deliveries.c.channel == "sms") == 40
