"""Self-service rules (`sts.vending.usecases.selfservice`) and the faces around them, on
SQLite and PostgreSQL: one-time codes (hashed, expiring, limited attempts, rate-limited in the
database), prompts rate-limited per phone, the quote, a USSD fault report, and the web back
office's exceptions list with its settle actions."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from sts.errors import InputError, RateLimited, UnknownMeter
from sts.vending.storage.tables_clients import fault_reports
from sts.vending.storage.tables_payments import access_codes
from sts.vending.usecases.payments import Prompt, PromptAnswer
from tests.payments.conftest import Momo, confirmation

ON_RECORD = "+254711000001"  # the first demo customer's number (conftest)


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))

    def code(self) -> str:
        found = re.search(r"\b(\d{6})\b", self.sent[-1][1])
        assert found is not None
        return found.group(1)


def test_a_code_goes_to_the_number_on_record_and_is_stored_hashed(momo: Momo) -> None:
    svc, meter, out = momo.service, momo.meters[0], Outbox()
    sent = svc.send_access_code(meter[6:17], momo.caller, out)
    assert out.sent[0][0] == ON_RECORD and sent["sent_to"] != ON_RECORD
    code = out.code()
    with svc.db.read() as conn:
        row = conn.execute(sa.select(access_codes)).mappings().one()
    assert code not in (row["code_hash"], row["salt"]) and len(row["code_hash"]) == 64
    got = svc.my_tokens(meter, code, momo.caller)
    assert got["meter"] == meter and got["sales"] == []
    with pytest.raises(InputError, match="already used"):  # once only
        svc.my_tokens(meter, code, momo.caller)


def test_codes_expire_run_out_of_attempts_and_are_rate_limited(momo: Momo) -> None:
    svc, meter, out, clock = momo.service, momo.meters[0], Outbox(), momo.demo.clock
    svc.send_access_code(meter, momo.caller, out)
    clock.advance(minutes=6)
    with pytest.raises(InputError, match="expired"):
        svc.my_tokens(meter, out.code(), momo.caller)
    svc.send_access_code(meter, momo.caller, out)
    wrong = f"{(int(out.code()) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(InputError, match=f"{left} tries left"):
            svc.my_tokens(meter, wrong, momo.caller)
    with pytest.raises(InputError, match="ask for a new code"):
        svc.my_tokens(meter, wrong, momo.caller)
    with pytest.raises(InputError, match="expired or was already used"):  # spent
        svc.my_tokens(meter, out.code(), momo.caller)
    svc.send_access_code(meter, momo.caller, out)  # third in the window
    with pytest.raises(RateLimited):
        svc.send_access_code(meter, momo.caller, out)
    clock.advance(minutes=16)
    svc.send_access_code(meter, momo.caller, out)
    assert len(out.sent) == 4


def test_my_tokens_lists_the_meters_sales_key_change_first(momo: Momo) -> None:
    svc, meter, out = momo.service, momo.meters[1], Outbox()
    momo.client.post("/pay/c2b/confirmation", json=confirmation("RKS0000001", meter))
    svc.send_access_code(meter, momo.caller, out)
    sales = svc.my_tokens(meter, out.code(), momo.caller)["sales"]
    assert len(sales) == 1 and sales[0]["amount"] == "100.00"
    assert all(re.fullmatch(r"\d{20}", t["token"]) for t in sales[0]["tokens"])


def test_no_code_without_a_number_on_record_or_a_meter(momo: Momo) -> None:
    from sts.vending.storage.tables import customers

    svc, out = momo.service, Outbox()
    with svc.db.begin() as conn:
        conn.execute(sa.update(customers).where(customers.c.account_no == "ACC0005")
                     .values(phone=""))
    with pytest.raises(InputError, match="no phone number on record"):
        svc.send_access_code(momo.meters[4], momo.caller, out)
    with pytest.raises((UnknownMeter, InputError)):
        svc.send_access_code("01234567890", momo.caller, out)
    assert out.sent == []


def test_quote_and_prompts_rate_limited_per_phone(momo: Momo) -> None:
    svc, meter = momo.service, momo.meters[0]
    q = svc.self_quote(meter, "100", momo.caller)
    assert q["customer"] == "D*** C*** 1***" and q["amount"] == "100.00"
    assert float(q["units"]) > 0 and q["unit"] == "kWh"
    with pytest.raises(InputError) as low:
        svc.self_quote(meter, "1", momo.caller)
    assert low.value.field == "amount"
    asked: list[Prompt] = []

    def ask(p: Prompt) -> PromptAnswer:
        asked.append(p)
        return PromptAnswer(f"ws_CO_{len(asked):04d}")

    tickets = [svc.self_prompt(meter, "100", "254722000111", momo.caller, ask)["ticket"]
               for _ in range(3)]
    with pytest.raises(RateLimited):
        svc.self_prompt(meter, "100", "254722000111", momo.caller, ask)
    assert len(asked) == 3
    state = svc.self_follow(tickets[0], momo.caller)
    assert state["state"] == "pending" and "tokens" not in state
    altered = tickets[0][:-1] + ("y" if tickets[0].endswith("x") else "x")  # never the same
    with pytest.raises(Exception, match="no such payment request"):
        svc.self_follow(altered, momo.caller)


def test_ussd_report_a_fault(momo: Momo) -> None:
    meter = momo.meters[0]

    def ussd(text: str) -> str:
        r = momo.client.post("/ussd", data={"sessionId": "ATUid_f1", "serviceCode": "*384#",
                                            "phoneNumber": "+254722000111", "text": text})
        assert r.status_code == 200
        return str(r.text)

    assert "4. Report a fault" in ussd("")
    assert ussd("4") == "CON Enter the meter number"
    screen = ussd(f"4*{meter}")
    assert screen.startswith("CON") and "No power" in screen and len(screen) <= 182
    assert ussd(f"4*{meter}*9").startswith("END Please start again")
    done = ussd(f"4*{meter}*1")
    ref = re.search(r"reference is (FR[0-9A-F]+)", done)
    assert ref is not None and len(done) <= 182
    assert ussd(f"4*{meter}*1") == done  # the session repeated: the same report
    with momo.service.db.read() as conn:
        rows = conn.execute(sa.select(fault_reports)).mappings().all()
    assert len(rows) == 1 and rows[0]["reference"] == ref.group(1)
    assert rows[0]["fault_type"] == "no_power" and rows[0]["contact_number"] == "+254722000111"

    # a blocked meter can still be reported (it may be why there is no power); a wrong number
    # is refused at once
    momo.demo.registry.set_meter_status(momo.meters[1], "blocked", "tamper")
    r = momo.client.post("/ussd", data={"sessionId": "ATUid_f2", "serviceCode": "*384#",
                                        "phoneNumber": "+254722000111",
                                        "text": f"4*{momo.meters[1]}*3"})
    assert r.text.startswith("END Fault reported")
    assert ussd("4*01234567890").startswith("END That meter number is not known")


# --- the web back office ---------------------------------------------------------------------


def _sign_in(momo: Momo, who: dict[str, str]) -> tuple[Any, str]:
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    client = TestClient(create_app(momo.service), raise_server_exceptions=False)
    login = client.get("/login")
    resp = client.post("/login", data={"csrf": _csrf(login.text), "username": who["username"],
                                       "password": who["password"]}, follow_redirects=False)
    assert resp.status_code == 303, resp.text[:300]
    return client, _csrf(client.get("/simulator").text)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


@pytest.mark.slow  # signs three operators in (password hashing)
def test_exceptions_on_the_web_back_office(momo: Momo) -> None:
    from sts.vending.registry import operators as operator_admin

    passwords = operator_admin.demo_passwords(momo.demo.registry)
    blocked = momo.meters[2]
    momo.demo.registry.set_meter_status(blocked, "blocked", "tamper")
    momo.client.post("/pay/c2b/confirmation", json=confirmation("RKX0000001", blocked))
    momo.client.post("/pay/c2b/confirmation", json=confirmation("RKX0000002", momo.meters[0]))

    auditor, _ = _sign_in(momo, passwords["auditor"])
    page = auditor.get("/payments")
    assert page.status_code == 200 and "RKX0000001" in page.text and "METER_BLOCKED" in page.text
    assert "RKX0000002" not in page.text  # sold: not an exception
    assert "RKX0000001" not in auditor.get("/payments?provider=momo").text
    # paged, searched and sorted on the server (sts.vending.listing)
    assert re.search(r'id="payments-count" role="status">1–1 of 1 payments<', page.text)
    assert "RKX0000001" in auditor.get("/payments?q=rkx00000").text
    assert "RKX0000001" not in auditor.get("/payments?q=nobody").text
    everything = auditor.get("/payments?state=&sort=amount&order=desc").text
    assert "RKX0000001" in everything and "RKX0000002" in everything
    bad = auditor.get("/payments?sort=phone")
    assert bad.status_code == 422 and "sort must be one of" in bad.text.lower()
    from sts.vending.access.policy import Caller
    from sts.vending.usecases import lists_office

    svc = momo.demo.service
    assert [r["provider_id"] for r in lists_office.list_payments(
        svc, Caller(0, "admin", "a", None), {}).rows] == ["RKX0000001"]
    other = Caller(0, "supervisor", "s", 10**6)  # a supervisor of another vendor
    assert lists_office.list_payments(svc, other, {"state": ""}).rows == []
    detail = auditor.get("/payments/mpesa/RKX0000001")
    assert detail.status_code == 200 and "Sell again" not in detail.text  # may not settle
    refused = auditor.post("/payments/mpesa/RKX0000001/settle",
                           data={"csrf": "x", "action": "refund", "reason": "no"})
    assert refused.status_code == 403

    cashier, _ = _sign_in(momo, passwords["vendor"])
    assert cashier.get("/payments").status_code == 403

    admin, csrf = _sign_in(momo, passwords["admin"])
    assert "Sell again" in admin.get("/payments/mpesa/RKX0000001").text
    still = admin.post("/payments/mpesa/RKX0000001/settle",
                       data={"csrf": csrf, "action": "sell", "reason": "try again"})
    assert "Still refused" in still.text and "METER_BLOCKED" in still.text
    empty = admin.post("/payments/mpesa/RKX0000001/settle",
                       data={"csrf": csrf, "action": "refund", "reason": ""})
    assert empty.status_code == 422 and "reason is required" in empty.text.lower()
    momo.demo.registry.set_meter_status(blocked, "active", "fixed")
    sold = admin.post("/payments/mpesa/RKX0000001/settle",
                      data={"csrf": csrf, "action": "sell", "reason": "meter fixed"})
    assert sold.status_code == 200 and "Sold again" in sold.text
    assert re.search(r'id="state">sold<', sold.text) and 'id="sale"' in sold.text
    again = admin.post("/payments/mpesa/RKX0000001/settle",
                       data={"csrf": csrf, "action": "refund", "reason": "twice"})
    assert again.status_code == 409
    assert "RKX0000001" not in admin.get("/payments").text
