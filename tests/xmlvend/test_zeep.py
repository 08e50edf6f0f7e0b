"""A real SOAP client driven only by our WSDL (zeep, fetching the WSDL and the XSDs from the
server) runs every use case against `sts serve`, on SQLite and PostgreSQL; every raw answer
is validated with lxml against the XSDs (less the documented profile deviations)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.fixtures import known_pan
from tests.support.server import Server
from tests.support.xmlvend import BASE, METER, REV, drn_of, register, validate
from tests.xmlvend.test_flows import NEW_KEY, SGC, pan_for, rich_meter

zeep = pytest.importorskip("zeep")
_n = itertools.count(1)


@pytest.fixture
def server(db_url: str, kek_file: str, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    from sts.vending.clock import wall_clock
    from sts.vending.config import Settings, open_service
    from tests.fixtures import make_demo

    svc = open_service(Settings(db_url=db_url, kek_file=kek_file, lookup_limit=1000),
                       run_migrations=True)
    demo = make_demo(svc, wall_clock)  # type: ignore[arg-type]
    register(demo, profile="hexing")
    register(demo, op="eng1", role="engineer")
    register(demo, client_id="6001234567891", profile="conlog")
    info = {"rich": rich_meter(demo, debt="0"), "demo": demo}
    svc.db.dispose()
    srv = Server(db_url, kek_file, log=tmp_path / "server.log").start()
    try:
        yield srv, info
    finally:
        srv.stop()


class Soap:
    """zeep, as an integrator would set it up from our WSDL, plus the raw answers."""

    def __init__(self, url: str, client_id: str, op: str) -> None:
        from zeep.plugins import HistoryPlugin

        self.history = HistoryPlugin()  # type: ignore[no-untyped-call]  # zeep's is unannotated
        self.client = zeep.Client(url + "/xmlvend/xmlvend.wsdl", plugins=[self.history],
                                  settings=zeep.Settings(strict=False))
        self.client_id, self.op = client_id, op

    def received(self) -> Any:
        """The envelope of the last answer (an lxml element)."""
        last = self.history.last_received
        assert last is not None, "no answer received"
        return last["envelope"]

    def t(self, ns: str, name: str) -> Any:
        return self.client.get_type(f"{{{ns}}}{name}")

    def head(self) -> dict[str, Any]:
        n = next(_n)
        self.msg = {"dateTime": f"2025060112{n:04d}", "uniqueNumber": n}
        return {"clientID": self.t(BASE, "EANDeviceID")(ean=self.client_id),
                "terminalID": self.t(BASE, "GenericDeviceID")(id="0000000000001"),
                "msgID": self.msg,
                "authCred": {"opName": self.op, "password": "operator-pass-1"}}

    def meter(self, msno: str) -> Any:
        return self.t(BASE, "VendIDMethod")(meterIdentifier=self.t(BASE, "MeterNumber")(
            msno=msno))

    def vend_args(self, msno: str, amount: str) -> dict[str, Any]:
        return self.head() | {
            "resource": self.t(BASE, "Electricity")(), "idMethod": self.meter(msno),
            "purchaseValue": self.t(REV, "PurchaseValueCurrency")(
                amt={"value": amount, "symbol": "ZAR"})}

    def call(self, op: str, **kw: Any) -> Any:
        out = getattr(self.client.service, op)(**kw)
        env = self.received()
        validate(env.find(f"{{{env.nsmap['SOAP-ENV' if 'SOAP-ENV' in env.nsmap else 'soap']}}}"
                          "Body")[0])
        return out

    def fault(self, op: str, **kw: Any) -> str:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            getattr(self.client.service, op)(**kw)
        detail = caught.value.detail
        payload = detail[0]
        validate(payload)
        fault = next(c for c in payload if etree.QName(c).localname == "fault")
        return str(fault.get("{http://www.w3.org/2001/XMLSchema-instance}type")).split(":")[-1]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["hexing", "conlog"])
def test_every_use_case_through_zeep(server: tuple[Server, dict[str, Any]], profile: str) -> None:
    srv, info = server
    soap = Soap(srv.url, "6001234567890" if profile == "hexing" else "6001234567891",
                "cashier1")
    msno, rich = drn_of(known_pan()), drn_of(info["rich"])
    user = soap.call("LoginRequest", **soap.head())
    assert user.CDUName == "Demo Vendor"
    conf = soap.call("ConfirmCustomerRequest", **soap.head(), idMethod=soap.meter(msno))
    assert conf.confirmCustResult[0].custVendConfig.canVend is True
    cm = soap.call("ConfirmMeterRequest", **soap.head(), idMethod=soap.meter(msno))
    assert cm.confirmMeterResult.meterDetail.sgc == "999920"
    trial = soap.call("TrialCreditVendRequest", **soap.vend_args(msno, "50"))
    assert trial.creditVendReceipt.transactions.tx[0].creditTokenIssue.token.stsCipher == "0" * 20
    sale = soap.call("CreditVendRequest", **soap.vend_args(rich, "100"))
    txs = sale.creditVendReceipt.transactions.tx
    assert len(txs) >= 3  # credit, free units, the fixed charge
    token = txs[0].creditTokenIssue.token.stsCipher
    sold = dict(soap.msg)
    # advices are polymorphic (b:adviceReq is abstract): each concrete type is sent typed
    advice = soap.client.get_element(f"{{{BASE}}}adviceReq")
    last = _send(soap, advice, soap.t(BASE, "LastRespAdviceReq")(**soap.head(),
                                                                adviceReqMsgID=sold))
    assert "lastResponse" in last and token in last
    conf = _send(soap, advice, soap.t(BASE, "ConfirmationAdviceReq")(**soap.head(),
                                                                     adviceReqMsgID=sold))
    assert 'txConfirmed="true"' in conf
    second = soap.call("CreditVendRequest", **soap.vend_args(msno, "20"))
    rev = _send(soap, advice, soap.t(BASE, "ReversalAdviceReq")(
        **soap.head(), adviceReqMsgID=_msg_of(second)))
    assert 'txReversed="true"' in rev
    soap.call("ReprintRequest", **soap.head(), idMethod=soap.meter(rich))
    assert token in etree.tostring(soap.received()).decode()
    assert soap.fault("FBERequest", **soap.head(), resource=soap.t(BASE, "Electricity")(),
                      idMethod=soap.meter(rich)) == "FBEEx"  # this month's came with the sale
    same = soap.fault("UpdateMeterKeyRequest", **soap.head(), idMethod=soap.t(
        BASE, "MeterDetail")(msno=rich, sgc=SGC, krn="1", ti="01",
                             meterType={"at": "07", "tt": "02"}))
    assert same == "UpdateMtrKeySameEx"
    verify = soap.call("VerifyRequest", **soap.head(), token=soap.t(BASE, "STS1Token")(
        stsCipher=token), idMethod=soap.meter(rich))
    assert verify.creditVendTx.receiptNo
    assert soap.fault("CreditVendRequest", **soap.vend_args(drn_of(pan_for(99)), "20")) \
        == "UnknownMeterEx"
    assert soap.fault("PayAccRequest", **soap.head(), reqAmt={"value": "1", "symbol": "ZAR"},
                      payAccount=soap.t(REV, "DebtRecovery")(idMethod=soap.meter(msno))) \
        == "UseCaseSupportEx"
    # engineering tokens and a key change, by an engineer operator of the hexing client
    if profile == "hexing":
        eng = Soap(srv.url, "6001234567890", "eng1")
        base = eng.head() | {"resource": eng.t(BASE, "Electricity")(),
                             "idMethod": eng.meter(msno)}
        for kind, extra in (("ClearCreditReq", {}), ("ClearTamperReq", {}),
                            ("PwrLmtReq", {"pwrLmt": {"value": "5", "siUnit": "kW"}})):
            value = eng.t(METER, kind)(**(base | eng.head() | extra))
            out = _send(eng, eng.client.get_element(f"{{{METER}}}meterSpecificEngReq"), value)
            assert "stsCipher" in out
        info["demo"].registry.add_key(SGC, 2, raw=NEW_KEY, base_date=2014)
        kct = eng.t(METER, "EngKCTReq")(**(eng.head() | {
            "resource": eng.t(BASE, "Electricity")(), "idMethod": eng.meter(rich),
            "kctData": {"fromSGC": SGC, "fromKRN": "1", "fromTI": "01", "toSGC": SGC,
                        "toKRN": "2", "toTI": "01"}}))
        assert "set2ndMeterKey" in _send(eng, eng.client.get_element(
            f"{{{METER}}}meterSpecificEngReq"), kct)


def _msg_of(resp: Any) -> dict[str, Any]:
    return {"dateTime": resp.reqMsgID.dateTime, "uniqueNumber": resp.reqMsgID.uniqueNumber}


def _send(soap: Soap, element: Any, value: Any) -> str:
    """Send a polymorphic root (an abstract global element with a concrete xsi:type): zeep's
    operation signature takes the element's declared (abstract) type, so zeep renders the
    typed value itself and its transport posts it to the WSDL's address."""
    node = etree.Element("x")
    element.render(node, value)
    transport_url = soap.client.service._binding_options["address"]
    envelope = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                f"<soap:Body>{etree.tostring(node[0]).decode()}</soap:Body></soap:Envelope>")
    resp = soap.client.transport.post(transport_url, envelope, {"Content-Type": "text/xml"})
    text = resp.content.decode()
    root = etree.fromstring(resp.content)
    payload = root[-1][0]
    if etree.QName(payload).localname != "Fault":
        validate(payload)
    assert resp.status_code == 200, text[:1500]
    return str(text)
