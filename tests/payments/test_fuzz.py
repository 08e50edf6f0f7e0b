"""Hostile callbacks: any JSON for any field, any form for USSD -> a clear 4xx (or an answer),
never a 5xx, and nothing sold from a body that failed its checks."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sts.errors import AlreadyExists
from tests.payments.conftest import Momo, confirmation

VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=80), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
FIELDS = ["TransactionType", "TransID", "TransTime", "TransAmount", "BusinessShortCode",
          "BillRefNumber", "MSISDN", "FirstName", "InvoiceNumber"]
FUZZ = settings(max_examples=120,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def sqlite_only(momo: Momo) -> None:
    if not momo.service.db.is_sqlite:
        pytest.skip("the checks are the same on both databases; fuzz once")


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(FIELDS), VALUES, min_size=1, max_size=4),
       path=st.sampled_from(["/pay/c2b/validation", "/pay/c2b/confirmation"]))
def test_c2b_fields(momo: Momo, changes: dict[str, Any], path: str) -> None:
    sqlite_only(momo)
    body = confirmation("RKFUZZ0001", momo.meters[0]) | changes
    r = momo.client.post(path, json=body)
    assert r.status_code < 500, (body, r.text)
    if r.status_code != 200:
        assert r.json()["ResultCode"] == "C2B00016" and r.json()["ResultDesc"]


@FUZZ
@given(body=st.one_of(VALUES, st.dictionaries(st.text(max_size=20), VALUES, max_size=4),
                      st.fixed_dictionaries({"Body": st.fixed_dictionaries(
                          {"stkCallback": st.dictionaries(st.sampled_from(
                              ["CheckoutRequestID", "ResultCode", "ResultDesc",
                               "CallbackMetadata"]), VALUES, max_size=4)})})))
def test_stk_callback(momo: Momo, body: Any) -> None:
    sqlite_only(momo)
    r = momo.client.post("/pay/stk/callback", json=body)
    assert 400 <= r.status_code < 500, (body, r.text)


@FUZZ
@given(text=st.text(max_size=60), phone=st.text(min_size=1, max_size=20))
def test_ussd(momo: Momo, text: str, phone: str) -> None:
    sqlite_only(momo)
    r = momo.client.post("/ussd", data={"sessionId": "s1", "serviceCode": "*384#",
                                        "phoneNumber": phone, "text": text})
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert r.text.startswith(("CON ", "END ")) and len(r.text) <= 182


@FUZZ
@given(body=st.one_of(VALUES, st.dictionaries(st.sampled_from(
    ["externalId", "status", "financialTransactionId", "amount", "currency", "payer",
     "reason"]), st.one_of(VALUES, st.just("0f8fad5b-d9cb-469f-a165-70867728950e"),
                           st.sampled_from(["SUCCESSFUL", "FAILED", "PENDING"])),
    max_size=7)))
def test_momo_callback(momo: Momo, body: Any) -> None:
    sqlite_only(momo)
    with contextlib.suppress(AlreadyExists):  # the channel's vendor (once per test)
        momo.demo.registry.add_vendor("MTN MoMo", float_balance="1000")
    r = momo.client.put("/pay/momo/callback", json=body)
    assert r.status_code < 500, (body, r.text)
    assert r.status_code != 404 or r.json()["field"] == "request_id"  # parsed, then unknown
