"""Electrum credentials bound to a client certificate (issue 21), as a verifying TLS proxy
passes it (`STS_CLIENT_CERT_HEADER`); the real `sts serve` with mutual TLS is in
tests/server/test_tls.py.  A header is believed only when the operator named it."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from sts.errors import AlreadyExists, InputError
from sts.vending.access import credentials
from tests.support.electrum import BASE, Switch, envelope, make_switch, new_id

CERT = hashlib.sha256(b"switch certificate").hexdigest()
OTHER = hashlib.sha256(b"another certificate").hexdigest()


def lookup(switch: Switch, meter: str, *, basic: bool, cert: str | None) -> int:
    lid = new_id()
    headers = dict(switch.headers) if basic else {}
    if cert is not None:
        headers["X-Client-Cert"] = cert
    r: httpx.Response = switch.demo.client.post(f"{BASE}/meterLookups/{lid}", headers=headers,
                                                json=envelope(lid, meter={"meterId": meter}))
    return r.status_code


def test_bound_credential_needs_its_certificate(switch: Switch,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    meter, db = switch.demo.meters[0], switch.demo.service.db
    credentials.bind_certificate(db, switch.username, CERT.upper()[:32] + ":" + CERT[32:])
    # no header named: a client cannot claim a certificate by sending the header itself
    assert lookup(switch, meter, basic=False, cert=CERT) == 401
    assert lookup(switch, meter, basic=True, cert=CERT) == 401
    monkeypatch.setenv("STS_CLIENT_CERT_HEADER", "x-client-cert")
    assert lookup(switch, meter, basic=True, cert=CERT) == 201
    assert lookup(switch, meter, basic=False, cert=CERT) == 201  # the certificate alone
    assert lookup(switch, meter, basic=True, cert=None) == 401
    assert lookup(switch, meter, basic=True, cert=OTHER) == 401
    assert lookup(switch, meter, basic=False, cert=OTHER) == 401  # bound to nobody
    assert lookup(switch, meter, basic=False, cert="garbage") == 401
    credentials.bind_certificate(db, switch.username, None)  # unbound: Basic alone again
    assert lookup(switch, meter, basic=True, cert=None) == 201
    assert lookup(switch, meter, basic=False, cert=CERT) == 401


def test_one_certificate_one_credential(switch: Switch) -> None:
    db = switch.demo.service.db
    other = make_switch(switch.demo)
    credentials.bind_certificate(db, switch.username, CERT)
    with pytest.raises(AlreadyExists):
        credentials.bind_certificate(db, other.username, CERT)
    with pytest.raises(InputError):
        credentials.bind_certificate(db, other.username, "12ab")
    with db.read() as conn:
        rows = {r["username"]: r for r in credentials.list_credentials(conn)}
    assert rows[switch.username]["cert_sha256"] == CERT
