"""The service's payment rule without HTTP: a row before anything else, one sale per provider
transaction, exceptions listed with their reason, the access policy (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from sts.errors import NotAuthorised, PaymentState, UnknownRecord
from sts.vending.access.policy import Caller
from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_delivery import deliveries
from sts.vending.usecases.payments import Payment, international, purchase_id_of
from tests.payments.conftest import Momo


def pay(momo: Momo, tid: str, *, meter: str | None = None, amount: str = "100",
        msisdn: str = "254722000111") -> tuple[dict[str, Any], bool]:
    p = Payment(provider="mpesa", provider_id=tid, kind="c2b",
                account=meter or momo.meters[0], amount=Decimal(amount), currency="KES",
                msisdn=msisdn, payer="JOHN")
    out: tuple[dict[str, Any], bool] = momo.service.receive_payment(p, momo.caller)
    return out


def sales(momo: Momo) -> int:
    with momo.service.db.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(transactions)
                               .where(transactions.c.kind == "sale")) or 0)


def sms_jobs(momo: Momo, pid: str) -> list[str]:
    with momo.service.db.read() as conn:
        return list(conn.scalars(sa.select(deliveries.c.recipient).where(
            deliveries.c.request_id == pid, deliveries.c.channel == "sms")))


def test_ids_and_numbers() -> None:
    assert purchase_id_of("mpesa", "RKTQDM7W6S") == "mpesa-RKTQDM7W6S"
    long = purchase_id_of("mpesa", "X" * 64)
    assert long.startswith("mpesa-") and len(long) <= 64
    assert international("254722000111") == "+254722000111"
    assert international("+254722000111") == "+254722000111"
    assert international("2547 ***** 111") is None
    assert international("a" * 64) is None


def test_sold_once_with_sms_to_the_payer(momo: Momo) -> None:
    out, created = pay(momo, "RKTQDM7W6S")
    assert created and out["state"] == "sold" and out["purchase_id"] == "mpesa-RKTQDM7W6S"
    assert out["phone"] == "+254722000111" and out["amount"] == "100.00"
    assert sms_jobs(momo, "mpesa-RKTQDM7W6S") == ["+254722000111"]
    again, created = pay(momo, "RKTQDM7W6S")  # a duplicate callback changes nothing
    assert not created and again == out
    assert sales(momo) == 1 and len(sms_jobs(momo, "mpesa-RKTQDM7W6S")) == 1


def test_masked_number_goes_to_the_customer_on_record(momo: Momo) -> None:
    out, _ = pay(momo, "RKTQDM7W6T", msisdn="2547 ***** 111")
    assert out["state"] == "sold" and out["msisdn"] == "2547 ***** 111"
    assert out["phone"] == "+254711000001"
    hashed = "a" * 64
    out, _ = pay(momo, "RKTQDM7W6U", msisdn=hashed, meter=momo.meters[1])
    assert out["phone"] == "+254711000002" and out["msisdn"] == hashed


def test_blocked_after_validation_is_an_exception(momo: Momo) -> None:
    meter = momo.meters[2]
    assert momo.service.validate_payment(meter, "100", momo.caller).outcome == "ok"
    momo.demo.registry.set_meter_status(meter, "blocked", "tamper")
    assert momo.service.validate_payment(meter, "100", momo.caller).outcome == "other"
    out, _ = pay(momo, "RKBLOCKED1", meter=meter)
    assert out["state"] == "exception" and out["reason"].startswith("METER_BLOCKED")
    assert out["purchase_id"] is None and sales(momo) == 0
    assert sms_jobs(momo, "mpesa-RKBLOCKED1") == []
    again, created = pay(momo, "RKBLOCKED1", meter=meter)
    assert not created and again == out

    sup = Caller(0, "admin", "t", None)
    listed = momo.service.list_payments(sup, state="exception")["payments"]
    assert [p["provider_id"] for p in listed] == ["RKBLOCKED1"]
    momo.demo.registry.set_meter_status(meter, "active")
    sold = momo.service.settle_payment("mpesa", "RKBLOCKED1", "sell", "meter unblocked", sup)
    assert sold["state"] == "sold" and sales(momo) == 1
    with pytest.raises(PaymentState):
        momo.service.settle_payment("mpesa", "RKBLOCKED1", "refund", "x", sup)


def test_bad_account_and_amount(momo: Momo) -> None:
    v = momo.service.validate_payment("0123456789", "100", momo.caller)
    assert v.outcome == "account"
    assert momo.service.validate_payment(momo.meters[0], "1", momo.caller).outcome == "amount"
    assert momo.service.validate_payment(momo.meters[0], "99999", momo.caller
                                         ).outcome == "amount"
    out, _ = pay(momo, "RKMISTYPED", meter="0123456789")
    assert out["state"] == "exception" and out["meter"] is None
    out, _ = pay(momo, "RKTOOMUCH1", amount="99999")
    assert out["state"] == "exception" and out["reason"].startswith("AMOUNT_TOO_HIGH")
    sup = Caller(0, "supervisor", "t", None)
    refunded = momo.service.settle_payment("mpesa", "RKTOOMUCH1", "refund", "B2C RX1", sup)
    assert refunded["state"] == "refunded"


def test_access_policy(momo: Momo) -> None:
    pay(momo, "RKPOLICY01")
    for role in ("supervisor", "admin", "auditor"):
        got = momo.service.payment("mpesa", "RKPOLICY01", Caller(0, role, "t", None))
        assert got["sale"]["tokens"] and got["sale"]["receipt_no"]
    for role in ("vendor", "engineer"):
        with pytest.raises(NotAuthorised):
            momo.service.payment("mpesa", "RKPOLICY01", Caller(0, role, "t", None))
    other = Caller(0, "supervisor", "t", momo.caller.vendor_id + 1000)
    with pytest.raises(UnknownRecord):  # another vendor's supervisor: as if it did not exist
        momo.service.payment("mpesa", "RKPOLICY01", other)
    assert momo.service.list_payments(other)["payments"] == []
    with pytest.raises(NotAuthorised):
        momo.service.settle_payment("mpesa", "RKPOLICY01", "refund", "x",
                                    Caller(0, "auditor", "t", None))


def test_a_stop_between_row_and_sale_is_sold_once(momo: Momo) -> None:
    """The server stopped after writing the row, before the sale: the next callback for it
    (or `retry_payments`) sells it, once."""
    from sts.vending.usecases import payments as uc

    for tid in ("RKSTOP0001", "RKSTOP0002"):
        p = Payment(provider="mpesa", provider_id=tid, kind="c2b", account=momo.meters[0],
                    amount=Decimal("100"), msisdn="254722000111")
        assert uc._insert(momo.service, p, momo.caller, momo.service.now())  # then "killed"
    admin = Caller(0, "admin", "t", None)
    assert momo.service.payment("mpesa", "RKSTOP0001", admin)["state"] == "received"
    out, created = pay(momo, "RKSTOP0001")  # Daraja's repeat of the confirmation
    assert not created and out["state"] == "sold"
    assert momo.service.retry_payments(momo.caller) == 1  # RKSTOP0002
    assert momo.service.retry_payments(momo.caller) == 0
    assert sales(momo) == 2
    assert momo.service.payment("mpesa", "RKSTOP0002", admin)["state"] == "sold"


def test_channel_report_ties_to_sales(momo: Momo) -> None:
    from datetime import datetime

    pay(momo, "RKREP00001")
    pay(momo, "RKREP00002", amount="250")
    pay(momo, "RKREP00003", meter="0123456789")  # an exception
    admin = Caller(0, "admin", "t", None)
    start, end = datetime(2025, 3, 1), datetime(2025, 4, 1)
    out = momo.service.payments_report(admin, "mpesa", start, end)
    assert out["states"]["sold"] == {"count": 2, "amount": "350.00"}
    assert out["states"]["exception"]["count"] == 1
    assert out["ties"] and out["sales_total"] == "350.00"
    momo.service.reverse("mpesa-RKREP00002", "never reached the customer",
                         Caller(0, "supervisor", "t", None))
    out = momo.service.payments_report(admin, "mpesa", start, end)
    assert not out["ties"] and out["untied"][0]["sale"] == "reversed"


def test_a_callback_before_its_prompt_is_stored_is_sold_once(momo: Momo) -> None:
    """A fast provider's paid callback overtakes our write of the prompt: the money is
    recorded at once and sold when the prompt names the meter."""
    from sts.vending.usecases.payments import PromptAnswer

    paid = Payment(provider="mpesa", provider_id="RKEARLY001", kind="stk", account="",
                   amount=Decimal("100"), currency="KES", msisdn="254722000111",
                   request_id="ws_CO_early")
    out = momo.service.prompt_result("mpesa", "ws_CO_early", "0", "ok", paid, momo.caller)
    assert out["state"] == "early" and out["payment"]["state"] == "received"
    assert momo.service.retry_payments(momo.caller) == 1  # no meter yet: an exception
    answer = momo.service.prompt_payment(momo.meters[0], "100", "254722000111", momo.caller,
                                         lambda _p: PromptAnswer("ws_CO_early", "m1"))
    assert answer["state"] == "paid"
    got = momo.service.payment("mpesa", "RKEARLY001", Caller(0, "admin", "t", None))
    assert got["state"] == "sold" and got["meter"] == momo.meters[0] and sales(momo) == 1
    again = momo.service.prompt_result("mpesa", "ws_CO_early", "0", "ok", paid, momo.caller)
    assert again["payment"]["state"] == "sold" and sales(momo) == 1
