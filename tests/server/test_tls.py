"""TLS on a real `sts serve` (issue 21): server-only TLS with HSTS and Secure cookies, TLS 1.2
as the floor, mutual TLS that maps a client certificate to an Electrum credential and an
XMLVend client, and the certificates it refuses (another CA's, an expired one).  The PKI is
made here, thrown away with the test."""

from __future__ import annotations

import json
import ssl
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sts.cli.vending import admin
from tests.support.electrum import envelope, new_id
from tests.support.server import Server
from tests.support.tlsrig import Authority, Issued
from tests.support.xmlvend import Client

pytestmark = pytest.mark.slow


def run(args: list[str]) -> Any:
    result = CliRunner().invoke(admin, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])


def client(ca: Path, cert: Issued | None = None, **kw: Any) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return httpx.Client(verify=ctx, timeout=30, **kw)


def lookup(http: httpx.Client, url: str, meter: str, **kw: Any) -> httpx.Response:
    lid = new_id()
    return http.post(f"{url}/prepaidutility/v3/meterLookups/{lid}",
                     json=envelope(lid, meter={"meterId": meter}), **kw)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = Authority(tmp_path / "ca", "sts-test-ca")
    other = Authority(tmp_path / "other", "someone-else")
    return {"ca": ca, "server": ca.issue("server", server=True),
            "switch": ca.issue("switch"), "till": ca.issue("till"),
            "expired": ca.issue("old-switch", expired=True),
            "stranger": other.issue("stranger")}


def test_mutual_tls(db_url: str, kek_file: str, pki: dict[str, Any], tmp_path: Path) -> None:
    base = ["--db", db_url, "--kek-file", kek_file, "--json"]
    info = run([*base, "demo"])
    meter, user, password = (info["meters"][0], info["electrum"]["username"],
                             info["electrum"]["password"])
    bound = run([*base, "electrum", "cert", user, "--cert-file", str(pki["switch"].cert)])
    assert len(bound["cert_sha256"]) == 64
    xv = info["xmlvend"]
    run([*base, "xmlvend", "client", "cert", xv["client_id"], "--cert-file",
         str(pki["till"].cert)])
    ca: Authority = pki["ca"]
    server = Server(db_url, kek_file, log=tmp_path / "serve.log",
                    verify=ssl.create_default_context(cafile=str(ca.file)), args=[
        "--tls-cert", str(pki["server"].cert), "--tls-key", str(pki["server"].key),
        "--tls-client-ca", str(ca.file)])
    server.start()
    try:
        url = server.url
        assert url.startswith("https://")
        # server-only TLS: a browser without a certificate gets the pages, with HSTS and
        # Secure cookies; no plain HTTP on the port
        with client(ca.file) as browser:
            page = browser.get(url + "/login")
            assert page.status_code == 200
            assert page.headers["strict-transport-security"].startswith("max-age=")
            assert "secure" in page.headers["set-cookie"].lower()
            assert browser.get(url + "/readyz").json()["status"] == "ready"
            # the credential is bound to its certificate: Basic alone is refused
            refused = lookup(browser, url, meter, auth=(user, password))
            assert refused.status_code == 401, refused.text
            assert "client certificate" in json.dumps(refused.json()["detailMessage"])
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
        # TLS 1.1 and older: no handshake
        old = ssl.create_default_context(cafile=str(ca.file))
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with warnings.catch_warnings():  # naming TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=old, timeout=5) as h:
            h.get(url + "/healthz")
        # mutual TLS: the switch's certificate is its credential (with or without Basic)
        with client(ca.file, pki["switch"]) as switch:
            assert lookup(switch, url, meter).status_code == 201
            assert lookup(switch, url, meter, auth=(user, password)).status_code == 201
            assert lookup(switch, url, meter, auth=(user, "wrong")).status_code == 401
        # another CA's certificate, and an expired one from ours: no handshake
        for name in ("stranger", "expired"):
            with pytest.raises(httpx.HTTPError), client(ca.file, pki[name]) as h:
                h.get(url + "/healthz")
        # XMLVend: the client bound to the till's certificate sells only with it
        with client(ca.file, pki["till"], base_url=url) as http:
            till = Client(http, client_id=xv["client_id"], op=xv["operator"],
                          password=xv["password"])
            ok = till.confirm(meter)
            assert ok.status == 200 and ok.fault_type is None, ok.text
        with client(ca.file, pki["switch"], base_url=url) as http:
            wrong = Client(http, client_id=xv["client_id"], op=xv["operator"],
                           password=xv["password"]).confirm(meter)
            assert wrong.fault_type == "ClientIDSSLEx", wrong.text
    finally:
        server.stop()


def test_tls_options_checked_before_serving(tmp_path: Path, pki: dict[str, Any]) -> None:
    """A key without a certificate, or a certificate that is not one, stops `sts serve` with
    the option named, before anything listens."""
    from sts.cli.group import cli

    db = str(tmp_path / "x.sqlite3")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    for extra, field in ((["--tls-key", str(pki["server"].key)], "tls_cert"),
                         (["--tls-cert", str(garbage)], "tls_cert"),
                         (["--tls-cert", str(pki["server"].cert), "--tls-client-ca",
                           str(tmp_path / "missing.pem")], "tls_client_ca")):
        result = CliRunner().invoke(cli, ["serve", "--db", db, "--json", *extra])
        assert result.exit_code != 0
        assert getattr(result.exception, "field", None) == field, (extra, result.exception)
