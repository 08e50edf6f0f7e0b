"""Carrier protocol details against real servers, one job at a time: SMTP AUTH (aiosmtpd),
SMS form bodies with Basic auth, and an unreachable carrier reported as down (never failed)."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from sts.delivery.carriers import Accepted, CarrierError
from sts.delivery.config import EmailConfig, SmsConfig
from sts.delivery.email_smtp import EmailCarrier
from sts.delivery.outbox import Job
from sts.delivery.sms_http import SmsCarrier
from tests.delivery.conftest import Gateway
from tests.vending.server import free_port

TOKEN = "12345678901234567890"
RESPONSE: dict[str, Any] = {
    "purchase_id": "p-0000001",
    "receipt": {"receipt_no": "0000000042", "units": "34.7", "unit": "kWh", "amount": "100.00"},
    "tokens": [{"token": TOKEN, "kind": "STD", "class": 0, "subclass": 0, "units": "34.7",
                "label": "CREDIT TOKEN"}],
    "slip": "CREDIT VEND - TAX INVOICE\n...\n",
}


def job(channel: str, to: str, lang: str = "") -> Job:
    return Job(id=9, request_id="p-0000001", channel=channel, recipient=to, lang=lang,
               status="pending", attempts=0, pan="600727041000000193", txn_kind="sale",
               response=RESPONSE)


def test_smtp_auth() -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    got: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.append((session.authenticated, envelope))
            return "250 OK"

    def check(server: Any, session: Any, envelope: Any, mechanism: str,
              data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"tokens" \
            and data.password == b"s3cret"
        return AuthResult(success=ok)

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=check,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        good = EmailCarrier(EmailConfig(host="127.0.0.1", port=port, username="tokens",
                                        password="s3cret", sender="t@u.example"))
        assert isinstance(good.send([job("email", "ann@example.org")])[0], Accepted)
        assert got and got[0][0] is True
        good.stop()
    finally:
        ctl.stop()


def test_sms_form_body_with_basic_auth(gateway: Gateway) -> None:
    cfg = SmsConfig(url=gateway.url, format="form", username="acct", password="pw",
                    fields={"dest": "{to}", "msg": "{text}"})
    carrier = SmsCarrier(cfg)
    out = carrier.send([job("sms", "+27825550101", "fr")])[0]
    assert isinstance(out, Accepted) and out.status == "delivered"
    req = gateway.requests[0]
    form = urllib.parse.parse_qs(req["body"])
    assert form["dest"] == ["+27825550101"]
    assert "1234 5678 9012 3456 7890" in form["msg"][0] and "Reçu 0000000042" in form["msg"][0]
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"acct:pw").decode()
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    carrier.stop()


def test_unreachable_carriers_are_down_not_failed() -> None:
    port = free_port()  # nothing listens there
    sms = SmsCarrier(SmsConfig(url=f"http://127.0.0.1:{port}/send", timeout=2))
    mail = EmailCarrier(EmailConfig(host="127.0.0.1", port=port, timeout=2))
    for carrier, channel, to in ((sms, "sms", "+27825550101"), (mail, "email", "a@b.example")):
        out = carrier.send([job(channel, to)])[0]
        assert isinstance(out, CarrierError) and out.down and out.retry, out
        carrier.stop()
