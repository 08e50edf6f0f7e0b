"""M-Pesa Express (STK push) and USSD end to end: the app served by uvicorn on a free port,
Daraja's stand-in on another; the stand-in POSTs its callbacks to our CallBackURL as Daraja
does.  Paid -> one sale and an SMS; cancelled or timed out -> nothing sold; a repeated
callback -> nothing new; a paid amount other than the prompt's -> an exception."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sts.payments.sandbox.daraja import Daraja
from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_delivery import deliveries
from sts.vending.storage.tables_payments import payment_requests, payments
from tests.payments.conftest import SHORTCODE, Momo
from tests.support.live import free_socket, serving
from tests.support.waiting import wait_for

PHONE = "254722000111"


class Live:
    def __init__(self, momo: Momo, daraja: Daraja, url: str) -> None:
        self.momo, self.daraja, self.url = momo, daraja, url

    def ussd(self, text: str, session: str = "ATUid_1") -> str:
        data = urllib.parse.urlencode({"sessionId": session, "serviceCode": "*384*62#",
                                       "phoneNumber": "+" + PHONE, "text": text}).encode()
        with urllib.request.urlopen(urllib.request.Request(
                self.url + "/ussd", data=data, method="POST"), timeout=30) as resp:
            body: str = resp.read().decode()
            return body

    def count(self, table: Any, *where: Any) -> int:
        with self.momo.service.db.read() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)
                                   .where(*where)) or 0)

    def request_state(self) -> str:
        with self.momo.service.db.read() as conn:
            return str(conn.scalar(sa.select(payment_requests.c.state)
                                   .order_by(payment_requests.c.id.desc()).limit(1)))


@pytest.fixture
def live(momo: Momo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    from sts.server.app import create_app

    daraja = Daraja(consumer_key="ck-test", consumer_secret="cs-test", passkey="pk-test",
                    shortcode=SHORTCODE).start()
    secret_file = tmp_path / "mpesa.secrets"
    secret_file.write_text("consumer_key=ck-test\nconsumer_secret=cs-test\npasskey=pk-test\n")
    os.chmod(secret_file, 0o600)
    sock, url = free_socket()
    monkeypatch.setenv("STS_MPESA_API", daraja.url)
    monkeypatch.setenv("STS_MPESA_CALLBACK_BASE", url)
    monkeypatch.setenv("STS_MPESA_SECRETS", str(secret_file))
    monkeypatch.setenv("STS_MPESA_SHORTCODE", SHORTCODE)
    try:
        with serving(create_app(momo.service), sock):
            yield Live(momo, daraja, url)
    finally:
        daraja.stop()


def test_ussd_buy_paid_sells_once(live: Live) -> None:
    meter = live.momo.meters[0]
    live.daraja.repeats = 3  # Daraja repeats its callback: one sale all the same
    assert live.ussd("").startswith("CON ")
    assert live.ussd("2") == "CON Enter the meter number"
    screen = live.ussd(f"2*{meter}")
    assert screen.startswith("CON Meter") and "D*** C*** 1" in screen and len(screen) <= 182
    assert "Pay" in live.ussd(f"2*{meter}*100")
    assert live.ussd(f"2*{meter}*100*1").startswith("END Enter your M-Pesa PIN")
    (prompt,) = live.daraja.prompts
    assert prompt.body["Amount"] == "100" and prompt.body["PhoneNumber"] == PHONE
    assert prompt.body["CallBackURL"] == live.url + "/pay/stk/callback"
    wait_for(lambda: live.daraja.callbacks_sent == 3, 20, "the callbacks")
    wait_for(lambda: live.count(payments, payments.c.state == "sold") == 1, 20, "the sale")
    assert live.daraja.errors == []
    assert live.count(transactions, transactions.c.kind == "sale") == 1
    assert live.count(deliveries, deliveries.c.channel == "sms",
                      deliveries.c.recipient == "+" + PHONE) == 1
    assert live.request_state() == "paid"

    # resend my last token: a new SMS job to this phone
    assert live.ussd("3").startswith("END Your last token")
    assert live.count(deliveries, deliveries.c.channel == "sms") == 2
    # check a meter: the customer's name masked
    assert "Customer: D*** C*** 1" in live.ussd(f"1*{meter}")


@pytest.mark.parametrize("outcome", ["cancelled", "timeout"])
def test_cancelled_or_timed_out_sells_nothing(live: Live, outcome: str) -> None:
    live.daraja.outcome = outcome
    assert live.ussd(f"2*{live.momo.meters[1]}*50*1").startswith("END Enter your M-Pesa PIN")
    wait_for(lambda: live.request_state() == "cancelled", 20, "the prompt's answer")
    assert live.count(payments) == 0 and live.count(transactions) == 0


def test_paid_other_amount_is_an_exception(live: Live) -> None:
    live.daraja.paid_amount = "60"
    live.ussd(f"2*{live.momo.meters[1]}*50*1")
    wait_for(lambda: live.count(payments, payments.c.state == "exception") == 1, 20, "the payment")
    assert live.count(transactions) == 0


def test_ussd_refusals(live: Live) -> None:
    assert live.ussd("2*12345").startswith("END That meter number is not known")
    assert live.ussd(f"2*{live.momo.meters[0]}*1*1").startswith("END Sorry")
    assert live.ussd(f"2*{live.momo.meters[0]}*abc").startswith("END Sorry")
    assert live.ussd(f"2*{live.momo.meters[0]}*99999").startswith("END Sorry: the maximum")
    assert live.ussd("3").startswith("END Sorry")  # nothing bought from this phone yet
    assert live.ussd("9") == "END Please choose 1, 2, 3 or 4."
    assert live.daraja.prompts == []


def test_stk_callback_hostile_and_unknown(live: Live) -> None:
    def post(body: Any) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(live.url + "/pay/stk/callback",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, out = post({"Body": {}})
    assert status == 422 and out["field"] == "Body.stkCallback"
    status, out = post({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_none",
                                                 "ResultCode": 1032}}})
    assert status == 404 and out["code"] == "UNKNOWN_RECORD"
    status, out = post({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1",
                                                 "ResultCode": 0, "CallbackMetadata": {
                                                     "Item": [{"Name": "Amount",
                                                               "Value": "x"}]}}}})
    assert status == 422 and out["field"] == "Amount"


@pytest.mark.parametrize("outcome,state", [("cancelled", "cancelled"), ("paid", "paid")])
def test_lost_callback_resolved_by_status_query(live: Live, outcome: str, state: str) -> None:
    from sts.payments.config import MobileMoneySettings
    from sts.payments.routes import resolve_prompts

    live.daraja.outcome, live.daraja.lose_callbacks = outcome, True
    live.ussd(f"2*{live.momo.meters[1]}*50*1")
    (prompt,) = live.daraja.prompts
    assert prompt.body["AccountReference"] == live.momo.meters[1][6:17]
    settings = MobileMoneySettings.from_env()  # the live app's (monkeypatched) settings
    assert resolve_prompts(live.momo.service, settings, 60) == []  # not old enough yet
    live.momo.demo.clock.advance(seconds=120)
    (out,) = resolve_prompts(live.momo.service, settings, 60)
    assert out["state"] == state and live.request_state() == state
    assert live.count(transactions) == 0  # a paid prompt waits for its receipt
    assert resolve_prompts(live.momo.service, settings, 60) == []


def test_register_urls_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       db_url: str, kek_file: str) -> None:
    """`sts admin mobile-money register`: OAuth with the consumer key and secret from the
    0600 file, then Daraja's register-URL call naming our two C2B endpoints."""
    from click.testing import CliRunner

    from sts.cli.vending import admin

    daraja = Daraja(consumer_key="ck", consumer_secret="cs", passkey="pk",
                    shortcode=SHORTCODE).start()
    try:
        secret_file = tmp_path / "mpesa.secrets"
        secret_file.write_text("consumer_key=ck\nconsumer_secret=cs\npasskey=pk\n")
        os.chmod(secret_file, 0o600)
        monkeypatch.setenv("STS_MPESA_API", daraja.url)
        monkeypatch.setenv("STS_MPESA_SECRETS", str(secret_file))
        result = CliRunner().invoke(admin, ["--db", db_url, "--kek-file", kek_file,
                                            "mobile-money", "register", "--base",
                                            "https://pay.example.org/", "--json"])
        assert result.exit_code == 0, result.output
        assert "cs" not in result.output.replace("Success", "")  # the secret never shows
        (reg,) = daraja.registered
        assert reg == {"ShortCode": SHORTCODE, "ResponseType": "Cancelled",
                       "ConfirmationURL": "https://pay.example.org/pay/c2b/confirmation",
                       "ValidationURL": "https://pay.example.org/pay/c2b/validation"}
        secret_file.write_text("consumer_key=ck\nconsumer_secret=wrong\npasskey=pk\n")
        result = CliRunner().invoke(admin, ["--db", db_url, "--kek-file", kek_file,
                                            "mobile-money", "register", "--base",
                                            "https://pay.example.org", "--json"])
        assert result.exit_code != 0 and result.exception is not None
        assert "Invalid Authentication" in str(result.exception)
        assert "wrong" not in str(result.exception) + result.output
    finally:
        daraja.stop()
