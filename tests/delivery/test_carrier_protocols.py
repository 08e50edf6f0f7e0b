"""Carrier protocol details against real servers, one job at a time: SMTP AUTH (aiosmtpd),
SMS form bodies with Basic auth, and an unreachable carrier reported as down (never failed)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

from sts.delivery.carriers import Accepted, CarrierError
from sts.delivery.config import EmailConfig, SmsConfig
from sts.delivery.email_smtp import EmailCarrier
from sts.delivery.sms_http import SmsCarrier
from sts.vending.outbox import Job
from tests.support.carriers import Gateway
from tests.support.server import free_port

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


class _TestCa:
    """A throwaway CA and a server certificate for 127.0.0.1, written as PEM files."""

    def __init__(self, tmp: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                           crl_sign=True, content_commitment=False,
                                           key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False,
                                           decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file, self.key_file = tmp / "server.pem", tmp / "server.key"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


class _Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[bool, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # over TLS: STARTTLS sets the session's TLS state; implicit TLS wraps the transport
        tls = session.ssl is not None or \
            server.transport.get_extra_info("ssl_object") is not None
        self.got.append((tls, envelope))
        return "250 OK"


def test_smtp_starttls_with_a_private_ca(tmp_path: Path) -> None:
    """STARTTLS against a server that requires it: trusted through `ca_file` the message goes
    over TLS; without the CA the job stays pending with the reason and nothing is sent."""
    from aiosmtpd.controller import Controller

    ca = _TestCa(tmp_path)
    rec = _Recorder()
    port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=port, tls_context=ca.server_context(),
                     require_starttls=True)
    ctl.start()
    try:
        trusted = EmailCarrier(EmailConfig(host="127.0.0.1", port=port, starttls=True,
                                           ca_file=str(ca.ca_file), sender="t@u.example"))
        out = trusted.send([job("email", "ann@example.org")])[0]
        trusted.stop()
        assert isinstance(out, Accepted), out
        assert len(rec.got) == 1 and rec.got[0][0] is True  # the data went over TLS
        assert TOKEN[:4] in rec.got[0][1].content.decode()

        untrusted = EmailCarrier(EmailConfig(host="127.0.0.1", port=port, starttls=True,
                                             sender="t@u.example", timeout=5))
        out = untrusted.send([job("email", "ann@example.org")])[0]
        untrusted.stop()
        assert isinstance(out, CarrierError) and out.down and out.retry, out
        assert "certificate is not trusted" in out.message and "ca_file" in out.message

        plain = EmailCarrier(EmailConfig(host="127.0.0.1", port=port, sender="t@u.example"))
        out = plain.send([job("email", "ann@example.org")])[0]
        plain.stop()
        assert isinstance(out, CarrierError) and "530" in out.message, out
        assert len(rec.got) == 1  # neither the untrusted nor the plain attempt sent anything
    finally:
        ctl.stop()


def test_smtp_implicit_tls_and_ca_file_config(tmp_path: Path) -> None:
    """`smtps://...&ca_file=` (implicit TLS) reaches a TLS-only server; a ca_file that is not
    a PEM bundle is refused when the configuration loads, naming the setting."""
    from aiosmtpd.controller import Controller

    from sts.delivery.config import DeliveryConfig
    from sts.errors import ConfigError

    ca = _TestCa(tmp_path)
    rec = _Recorder()
    port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=port, ssl_context=ca.server_context())
    ctl.start()
    try:
        cfg = DeliveryConfig.load(env={"STS_SMTP_URL": f"smtps://127.0.0.1:{port}?from=t@u.example"
                                                       f"&ca_file={ca.ca_file}"})
        assert cfg.email.ssl and cfg.email.ca_file == str(ca.ca_file)
        carrier = EmailCarrier(cfg.email)
        out = carrier.send([job("email", "ann@example.org")])[0]
        carrier.stop()
        assert isinstance(out, Accepted), out
        assert rec.got and rec.got[0][0] is True
    finally:
        ctl.stop()
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello")
    for path in (bad, tmp_path / "missing.pem"):
        try:
            DeliveryConfig.load(env={"STS_SMTP_URL": f"smtp://h:25?starttls=1&ca_file={path}"})
        except ConfigError as exc:
            assert exc.field == "email.ca_file" and str(path) in exc.message
        else:
            raise AssertionError(f"{path} was accepted as a CA file")
