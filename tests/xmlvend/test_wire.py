"""Transport (digest §1): the endpoints, the WSDL with its address rewritten, dispatch on the
Body (never SOAPAction), SOAP 1.1 and 1.2 answered in kind, charsets, gzip, HTTP statuses."""

from __future__ import annotations

import codecs
import gzip
from typing import Any

from lxml import etree

from tests.fixtures import known_pan
from tests.support.xmlvend import SOAP12, Client, drn_of, register


def test_wsdl_and_schemas(demo: Any) -> None:
    for path in ("/xmlvend/xmlvend.wsdl", "/xmlvend?wsdl", "/xmlvend?WSDL"):
        r = demo.client.get(path, headers={"host": "vend.example.org:8443"})
        assert r.status_code == 200, path
        assert 'location="http://vend.example.org:8443/xmlvend"' in r.text
        assert 'schemaLocation="http://vend.example.org:8443/xmlvend/xmlvend-base-2.1.xsd"' \
            in r.text
        etree.fromstring(r.content)
    for name in ("base", "meter", "revenue"):
        r = demo.client.get(f"/xmlvend/xmlvend-{name}-2.1.xsd")
        assert r.status_code == 200 and b"xs:schema" in r.content


def test_every_post_path_and_any_soapaction(demo: Any) -> None:
    register(demo)
    msno = drn_of(known_pan())
    for path, action in (("/xmlvend", ""), ("/xmlvend/xmlvend", '"CreditVendRequest"'),
                         ("/xmlvend/xmlvend.wsdl", "http://example/ns")):
        c = Client(demo.client, path=path)
        r = c.post(c.request("confirmCustomerReq", f'<p:idMethod xsi:type="VendIDMethod">'
                             f'<meterIdentifier xmlns="http://www.nrs.eskom.co.za/xmlvend/base'
                             f'/2.1/schema" xsi:type="MeterNumber" msno="{msno}"/>'
                             "</p:idMethod>"), soapaction=action)
        assert r.status == 200, (path, r.text)


def test_soap12_answered_in_kind(demo: Any, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    r = c.post(c.request("loginReq", "", soap=SOAP12))
    assert r.status == 200 and etree.QName(r.root).namespace == SOAP12
    assert r.headers["content-type"].startswith("application/soap+xml")
    bad = c.post(c.request("loginReq", "", soap=SOAP12, password="wrong-password"))
    assert bad.status == 500 and "Reason" in bad.text and bad.fault_type


def test_charsets(demo: Any) -> None:
    register(demo)
    c = Client(demo.client)
    text = c.request("loginReq", "")
    # .NET declares utf-16 over UTF-8 bytes: the declaration is ignored
    lying = '<?xml version="1.0" encoding="utf-16"?>' + text
    r = demo.client.post("/xmlvend", content=lying.encode("utf-8"),
                         headers={"content-type": "text/xml"})
    assert r.status_code == 200, r.text
    for enc, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-8", codecs.BOM_UTF8)):
        body = bom + ('<?xml version="1.0" encoding="utf-8"?>' + c.request("loginReq", "")
                      ).encode(enc)
        r = demo.client.post("/xmlvend", content=body, headers={"content-type": "text/xml"})
        assert r.status_code == 200, (enc, r.text)
    latin = c.request("loginReq", "").encode("latin-1")
    r = demo.client.post("/xmlvend", content=latin,
                         headers={"content-type": "text/xml; charset=ISO-8859-1"})
    assert r.status_code == 200


def test_whitespace_in_empty_elements_and_gzip(demo: Any) -> None:
    register(demo)
    c = Client(demo.client)
    text = c.request("loginReq", "").replace("/>", "> </clientID>", 1).replace(
        '<clientID', '<clientID', 1)
    r = demo.client.post("/xmlvend", content=text.encode(), headers={
        "content-type": "text/xml", "accept-encoding": "UTF-8"})
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers  # gzip only when offered
    msno = drn_of(known_pan())
    r = c.vend(msno, "20")
    raw = demo.client.post("/xmlvend", content=gzip.compress(c.request(
        "loginReq", "").encode()), headers={"content-type": "text/xml",
                                           "content-encoding": "gzip",
                                           "accept-encoding": "gzip, deflate"})
    assert raw.status_code == 200 and raw.headers.get("content-encoding") in (None, "gzip")


def test_framework_errors_are_soap_faults(demo: Any) -> None:
    r = demo.client.post("/xmlvend/nowhere", content=b"<x/>")
    assert r.status_code == 500 and b"Fault" in r.content
    r = demo.client.get("/xmlvend")
    assert r.status_code == 500 and b"Fault" in r.content
    r = demo.client.post("/xmlvend", content=b"x" * 70000, headers={"content-type": "text/xml"})
    assert r.status_code == 500 and b"XMLVendSchemaEx" in r.content
