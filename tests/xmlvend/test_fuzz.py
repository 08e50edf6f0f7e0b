"""Hostile XML: entity expansion, external entities, deep nesting, huge text, wrong namespaces
and random mutations of real requests are answered with a SOAP fault (HTTP 500 and nothing
else), never a traceback, a file read or a network call."""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest

from tests.support.xmlvend import SAMPLES, Client, register

BILLION = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
           '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
           '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
           "<soapenv:Body><a>&lol3;</a></soapenv:Body></soapenv:Envelope>")


def hostile(secret: str, port: int) -> list[bytes]:
    env = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
           "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>")
    return [
        BILLION.encode(),
        (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'
         + env.format("<a>&e;</a>")).encode(),
        (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:{port}/">]>'
         + env.format("<a>&e;</a>")).encode(),
        (f'<!DOCTYPE x SYSTEM "http://127.0.0.1:{port}/dtd">' + env.format("<a/>")).encode(),
        env.format("<a>" * 5000 + "</a>" * 5000).encode(),
        env.format("<a>" + "x" * 60000 + "</a>").encode(),
        env.format('<creditVendReq xmlns="urn:wrong"/>').encode(),
        env.format('<loginReq xmlns="http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"/>')
        .encode(),
        b'<Envelope xmlns="urn:not-soap"><Body/></Envelope>',
        b"", b"\x00\x01\x02", b"<", "<é/>".encode("utf-16"), b"\xff\xfe<\x00",
        (f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret}"/>'
         ).encode(),
        env.format('<p:creditVendReq xmlns:p="http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/'
                   'schema"><clientID xmlns="http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"'
                   ' ean="' + "9" * 5000 + '"/></p:creditVendReq>').encode(),
    ]


def check(r: Any, secret_text: str) -> None:
    assert r.status_code in (200, 500), r.status_code
    assert secret_text not in r.text
    assert "Traceback" not in r.text
    if r.status_code == 500:
        assert b"Fault" in r.content


def test_hostile_documents(demo: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    register(demo)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with socket.socket() as listener:  # a network call would land here
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for body in hostile(str(secret), port):
            r = demo.client.post("/xmlvend", content=body, headers={"content-type": "text/xml"})
            check(r, "TOP-SECRET-CONTENT")
            assert r.status_code == 500
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.slow
def test_mutated_samples(demo: Any, caplog: pytest.LogCaptureFixture) -> None:
    register(demo)
    c = Client(demo.client)
    rng = random.Random(62055)
    bodies = [p.read_bytes() for p in sorted(SAMPLES.glob("*-req*.xml"))] if SAMPLES.is_dir() \
        else [c.request("loginReq", "").encode()]
    for _ in range(300):
        data = bytearray(rng.choice(bodies))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[i] = rng.randrange(256)
            elif op < 0.7:
                del data[i:i + rng.randint(1, 20)]
            else:
                data[i:i] = data[rng.randrange(len(data)):][:rng.randint(1, 40)]
        r = demo.client.post("/xmlvend", content=bytes(data), headers={"content-type":
                                                                        "text/xml"})
        check(r, "Traceback")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert not errors, errors[0].getMessage()  # every input was answered on purpose
