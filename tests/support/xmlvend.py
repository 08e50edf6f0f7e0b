"""`Client`, which writes XMLVend 2.1 requests the way real client systems do and checks
answers against the reconstructed XSDs, and `register`, which registers a client system and
its operator."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from tests.fixtures import Demo

BASE = "http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"
REV = "http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"
METER = "http://www.nrs.eskom.co.za/xmlvend/meter/2.1/schema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS = {"b": BASE, "r": REV, "m": METER, "xsi": XSI, "s": SOAP11, "s12": SOAP12}
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "src" / "sts" / "xmlvend" / "schema"
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "xmlvend-2.1" / "samples"
CLIENT_ID = "6001234567890"
PASSWORD = "operator-pass-1"
_SCHEMA: list[etree.XMLSchema] = []
_counter = itertools.count(1)


def drn_of(pan: str) -> str:
    from sts.codec.pan import parse_pan

    return parse_pan(pan).drn


def schema() -> etree.XMLSchema:
    if not _SCHEMA:
        _SCHEMA.append(etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "xmlvend-base-2.1.xsd"))))
    return _SCHEMA[0]


def without_deviations(payload: etree._Element) -> etree._Element:
    """A copy of a payload with the documented profile deviations removed (docs/xmlvend.md):
    Hexing's min/max children of meterDetail; Conlog's tariffBreakdown, MonthlyTotals,
    utilityType and unitOfMeasurement extensions and its fault root outside any namespace."""
    el = etree.fromstring(etree.tostring(payload))
    for name in ("maxVendAmt", "minVendAmt", "maxVendEng", "minVendEng"):
        for x in el.iter(f"{{{BASE}}}{name}"):
            parent = x.getparent()
            if parent is not None and etree.QName(parent).localname == "meterDetail":
                parent.remove(x)
    for name in ("tariffBreakdown", "MonthlyTotals"):
        for x in list(el.iter(f"{{{REV}}}{name}")):
            parent = x.getparent()
            assert parent is not None, f"{name} is the root"
            parent.remove(x)
    for x in el.iter():
        for a in ("utilityType", "unitOfMeasurement"):
            if a in x.attrib:
                del x.attrib[a]
    if el.tag == "XMLVendFaultResp":
        el.tag = f"{{{BASE}}}xmlvendFaultResp"
    return el


def validate(payload: etree._Element) -> None:
    s = schema()
    el = without_deviations(payload)
    if not s.validate(el):
        raise AssertionError(str(s.error_log)[:3000] + "\n"  # its entries, one a line
                             + etree.tostring(payload).decode()[:3000])


def attr_of(el: etree._Element, name: str = "value") -> str:
    """An attribute the element must have."""
    value = el.get(name)
    assert value is not None, f"no {name} in {etree.tostring(el).decode()[:2000]}"
    return value


def text_of(el: etree._Element) -> str:
    """The text the element must have."""
    assert el.text is not None, f"no text in {etree.tostring(el).decode()[:2000]}"
    return el.text


def header(client_id: str, terminal: str, dt: str, un: str, op: str, password: str,
           kind: str = "EANDeviceID", terminal_kind: str = "GenericDeviceID") -> str:
    attr = "ean" if kind == "EANDeviceID" else "id"
    tattr = "ean" if terminal_kind == "EANDeviceID" else "id"
    return (f'<clientID xmlns="{BASE}" xsi:type="{kind}" {attr}="{client_id}"/>'
            f'<terminalID xmlns="{BASE}" xsi:type="{terminal_kind}" {tattr}="{terminal}"/>'
            f'<msgID xmlns="{BASE}" dateTime="{dt}" uniqueNumber="{un}"/>'
            f'<authCred xmlns="{BASE}"><opName>{op}</opName><password>{password}</password>'
            "</authCred>")


def envelope(body: str, soap: str = SOAP11) -> str:
    return (f'<soapenv:Envelope xmlns:soapenv="{soap}"><soapenv:Body>{body}</soapenv:Body>'
            "</soapenv:Envelope>")


def vend_id(msno: str) -> str:
    return (f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
            f'xsi:type="MeterNumber" msno="{msno}"/></idMethod>')


@dataclass
class Answer:
    status: int
    text: str
    headers: Any

    @property
    def root(self) -> etree._Element:
        return etree.fromstring(self.text.encode())

    @property
    def payload(self) -> etree._Element:
        body = self.root[-1]
        first = body[0]
        if etree.QName(first).localname == "Fault":
            detail = next(c for c in first if etree.QName(c).localname in ("detail", "Detail"))
            return detail[0]
        return first

    @property
    def fault_type(self) -> str | None:
        p = self.payload
        if etree.QName(p).localname.lower() != "xmlvendfaultresp":
            return None
        f = next(x for x in p if etree.QName(x).localname == "fault")
        return str(f.get(f"{{{XSI}}}type")).split(":")[-1]

    def find(self, path: str) -> list[etree._Element]:
        return list(self.payload.iterfind(path, NS))

    def first(self, path: str) -> etree._Element:
        found = self.find(path)
        assert found, f"{path} not in {self.text[:2000]}"
        return found[0]

    def tokens(self) -> list[str]:
        """Every stsCipher in order: key change tokens first (set 1, set 2), then credit."""
        out = []
        for tx in self.find(".//r:tx"):
            for kc in tx.iterfind("r:kcTokenIssue", NS):
                out += [c.text for c in kc.iterfind(".//b:stsCipher", NS)]
        for tx in self.find(".//r:tx"):
            out += [c.text for c in tx.iterfind("r:creditTokenIssue//b:stsCipher", NS)]
        return [t for t in out if t]


@dataclass
class Client:
    """A vending client system: one clientID, an operator, msgIDs that count up."""

    http: Any
    client_id: str = CLIENT_ID
    op: str = "cashier1"
    password: str = PASSWORD
    terminal: str = "0000000000001"
    path: str = "/xmlvend"
    client_kind: str = "EANDeviceID"
    terminal_kind: str = "GenericDeviceID"
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)

    def msg(self) -> tuple[str, str]:
        n = next(_counter)
        return f"2025030310{n % 10000:04d}", f"{n:06d}"

    def post(self, xml: str, **headers: str) -> Answer:
        h = {"content-type": "text/xml; charset=utf-8"} | headers
        r = self.http.post(self.path, content=xml.encode("utf-8"), headers=h)
        return Answer(r.status_code, r.text, r.headers)

    def request(self, root: str, inner: str, *, ns: str = REV, dt: str | None = None,
                un: str | None = None, xsi_type: str | None = None, soap: str = SOAP11,
                op: str | None = None, password: str | None = None,
                terminal: str | None = None) -> str:
        if dt is None or un is None:
            dt, un = self.msg()
        self.last_msg = (dt, un)
        typ = f' xsi:type="{xsi_type}"' if xsi_type else ""
        return envelope(f'<p:{root} xmlns:p="{ns}" xmlns:xsi="{XSI}"{typ}>'
                        + header(self.client_id, terminal or self.terminal, dt, un,
                                 op or self.op, password if password is not None
                                 else self.password, self.client_kind, self.terminal_kind)
                        + inner + f"</p:{root}>", soap)

    def vend(self, msno: str, amount: str = "50", root: str = "creditVendReq",
             **kw: Any) -> Answer:
        inner = (f'<resource xmlns="{BASE}" xsi:type="Electricity"/>' + vend_id(msno)
                 + f'<p:purchaseValue xsi:type="p:PurchaseValueCurrency"><p:amt value="{amount}"'
                 ' symbol="ZAR"/></p:purchaseValue>')
        return self.post(self.request(root, inner, **kw))

    def confirm(self, msno: str, **kw: Any) -> Answer:
        return self.post(self.request("confirmCustomerReq", vend_id(msno).replace(
            f'<idMethod xmlns="{BASE}"', "<p:idMethod").replace("</idMethod>", "</p:idMethod>")
            .replace('<meterIdentifier', f'<meterIdentifier xmlns="{BASE}"'), **kw))

    def advice(self, kind: str, dt: str, un: str, **kw: Any) -> Answer:
        inner = f'<adviceReqMsgID xmlns="{BASE}" dateTime="{dt}" uniqueNumber="{un}"/>'
        return self.post(self.request("adviceReq", inner, ns=BASE, xsi_type=f"p:{kind}", **kw))


def register(demo: Demo, *, client_id: str = CLIENT_ID, profile: str = "hexing",
             op: str = "cashier1", role: str = "vendor", password: str = PASSWORD,
             vendor: str = "Demo Vendor", cert: str | None = None) -> None:
    from sts.vending.access import vend_clients

    db = demo.service.db
    if vend_clients.find_client(db, client_id) is None:
        vend_clients.add_client(db, client_id=client_id, vendor=vendor, profile=profile,
                                cert_sha256=cert)
    vend_clients.add_operator(db, client_id=client_id, op_name=op, role=role, password=password)
