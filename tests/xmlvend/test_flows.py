"""Every XMLVend use case through the face, in both profiles, on SQLite and PostgreSQL;
answers validated against the reconstructed XSDs (less the documented deviations), tokens
entered into a virtual meter."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.vending.storage.tables import transactions
from tests.fixtures import TEST_VENDING_KEY, Demo, known_pan, virtual_meter
from tests.support.xmlvend import BASE, NS, XSI, Client, attr_of, drn_of, register, text_of, validate

SGC = "999940"
NEW_KEY = bytes(reversed(TEST_VENDING_KEY))


def sales(demo: Demo) -> int:
    with demo.service.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(transactions)
                               .where(transactions.c.kind == "sale")))


def pan_for(i: int) -> str:
    body = f"05{60000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


def xtype(el: Any) -> str:
    return str(el.get(f"{{{XSI}}}type")).split(":")[-1]


def rich_meter(demo: Demo, i: int = 1, *, debt: str = "100") -> str:
    """A meter on a known key with a step tariff, VAT, a fixed monthly charge, debt recovery
    and free basic units."""
    reg = demo.registry
    if i == 1:
        reg.add_sgc(SGC, utility="Demo Utility")
        reg.add_key(SGC, 1, raw=TEST_VENDING_KEY, base_date=2014)
        reg.authorise_vendor("Demo Vendor", SGC)
        reg.add_tariff("Rich", blocks=[("50", "1.00"), (None, "2.00")], vat_rate="0.15",
                       fixed_monthly="11.50", debt_share="0.10", free_units="50",
                       min_amount="5", max_amount="2000", ti=1, description="step tariff")
    reg.add_customer(f"RICH{i}", f"Rich Customer {i}", address="2 Step Road", debt=debt)
    pan = pan_for(i)
    reg.add_meter(pan, sgc=SGC, tariff="Rich", customer=f"RICH{i}")
    return pan


def test_credit_vend(client: Client, profile: str) -> None:
    r = client.vend(drn_of(known_pan()), "90.00")
    assert r.status == 200, r.text
    validate(r.payload)
    tx = r.first(".//r:tx")
    assert xtype(tx) == "CreditVendTx"
    amt = Decimal(attr_of(r.first(".//r:tx/r:amt")))
    tax = Decimal(attr_of(r.first(".//r:tx/r:tax/b:amt")))
    assert amt + tax == Decimal(attr_of(r.first(".//r:lessRound"))) == Decimal("90.00")
    assert len(text_of(r.first(".//b:stsCipher"))) == 20
    assert r.first("b:reqMsgID").get("uniqueNumber") == str(int(client.last_msg[1]))
    if profile == "conlog":
        assert "\n" not in r.text and '<tx xsi:type="CreditVendTx"' in r.text
        assert r.find(".//r:tariffBreakdown") and r.find("b:operatorMsg")
    else:
        assert "<ns3:creditVendResp" in r.text and 'xsi:type="ns3:CreditVendTx"' in r.text
        assert r.first(".//b:meterDetail/b:maxVendAmt").text == "5000"
        assert r.first(".//b:meterDetail/b:minVendAmt").text == "5"


def test_rich_sale_debt_charges_fbe_and_meter(demo: Demo, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    pan = rich_meter(demo)
    meter = virtual_meter(pan, demo.clock, sgc=SGC)
    r = c.vend(drn_of(pan), "100")
    assert r.status == 200, r.text
    validate(r.payload)
    kinds = [xtype(t) for t in r.find(".//r:tx")]
    assert kinds == ["CreditVendTx", "CreditVendTx", "ServiceChrgTx", "DebtRecoveryTx"]
    issues = [xtype(i) for i in r.find(".//r:creditTokenIssue")]
    assert issues == ["SaleCredTokenIssue", "FBECredTokenIssue"]
    total: Decimal | int = sum(Decimal(attr_of(a)) for a in r.find(".//r:tx/r:amt"))
    total += sum(Decimal(attr_of(a)) for a in r.find(".//r:tx/r:tax/b:amt"))
    assert total == Decimal(attr_of(r.first(".//r:tenderAmt"))) == Decimal("100.00")
    debt = Decimal(attr_of(r.find(".//r:tx/r:amt")[3]))
    assert Decimal(attr_of(r.first(".//r:balance"))) == Decimal("100") - debt > 0
    for token in r.tokens():
        assert meter.enter(token).result == "accept", token
    assert sales(demo) == 1


def test_key_change_tokens_inside_the_credit_tx(demo: Demo, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    pan = rich_meter(demo, debt="0")
    meter = virtual_meter(pan, demo.clock, sgc=SGC)
    demo.registry.add_key(SGC, 2, raw=NEW_KEY, base_date=2014)  # current: a key change is due
    demo.clock.advance(minutes=1)
    r = c.vend(drn_of(pan), "60")
    assert r.status == 200, r.text
    validate(r.payload)
    tx = r.first(".//r:tx")
    kc = tx.find("r:kcTokenIssue", NS)
    assert kc is not None
    kct = kc.find("b:kctData", NS)
    assert kct is not None and kct.get("toKRN") == "2"
    tokens = r.tokens()
    assert len(tokens) == 4  # 2 KCTs, credit, FBE
    for token in tokens:
        assert meter.enter(token).result in ("accept", "key_change_1", "key_change_2"), token
    assert meter.state.memory.key.krn == 2


def test_repeat_returns_the_stored_bytes_and_sells_once(client: Client) -> None:
    demo_svc = client.http.app.state.service
    msno = drn_of(known_pan())
    first = client.vend(msno, "20")
    dt, un = client.last_msg
    again = client.vend(msno, "20", dt=dt, un=un)
    assert again.status == 200 and again.text == first.text
    other = client.vend(msno, "30", dt=dt, un=un)
    assert other.status == 500 and other.fault_type == "BusinessRuleEx"
    with demo_svc.db.read() as conn:
        n = conn.scalar(select(func.count()).select_from(transactions))
    assert n == 1
    # uniqueNumber compares as a number: 000123 is 123
    r = client.vend(msno, "20", dt="20250303999999", un="000123")
    again = client.vend(msno, "20", dt="20250303999999", un="123")
    assert again.text == r.text


def test_last_response_advice_replays_the_answer_unchanged(client: Client) -> None:
    first = client.vend(drn_of(known_pan()), "25")
    dt, un = client.last_msg
    adv = client.advice("LastRespAdviceReq", dt, un)
    assert adv.status == 200, adv.text
    validate(adv.payload)
    last = adv.first("b:lastResponse")
    assert xtype(last) == "CreditVendResp"
    # the original's content, byte for byte, inside lastResponse
    start = first.text.index(">", first.text.index("creditVendResp")) + 1
    end = first.text.rindex("</", 0, first.text.rindex("creditVendResp"))
    assert first.text[start:end] in adv.text
    assert adv.first("b:adviceReqMsgID").get("dateTime") == dt


def test_last_response_for_an_unknown_msgid_voids_it(client: Client) -> None:
    adv = client.advice("LastRespAdviceReq", "20250303000001", "777")
    assert adv.status == 500 and adv.fault_type == "LastResponseEx"
    late = client.vend(drn_of(known_pan()), "20", dt="20250303000001", un="777")
    assert late.status == 500 and late.fault_type == "BusinessRuleEx"


def test_confirmation_then_no_reversal(client: Client) -> None:
    client.vend(drn_of(known_pan()), "25")
    dt, un = client.last_msg
    conf = client.advice("ConfirmationAdviceReq", dt, un)
    assert conf.status == 200, conf.text
    validate(conf.payload)
    assert conf.payload.get("txConfirmed") == "true"
    rev = client.advice("ReversalAdviceReq", dt, un)
    assert rev.status == 200 and rev.payload.get("txReversed") == "false"
    unknown = client.advice("ConfirmationAdviceReq", "1", "1")
    assert unknown.fault_type == "ConfirmationEx"


def test_reversal_only_before_the_token_was_sent_again(client: Client) -> None:
    svc = client.http.app.state.service
    msno = drn_of(known_pan())
    client.vend(msno, "25")
    dt, un = client.last_msg
    rev = client.advice("ReversalAdviceReq", dt, un)
    assert rev.status == 200 and rev.payload.get("txReversed") == "true", rev.text
    validate(rev.payload)
    dt2, un2 = client.msg()
    again = client.post(client.request("adviceReq", f'<adviceReqMsgID xmlns="{BASE}" '
                                       f'dateTime="{dt}" uniqueNumber="{un}"/>', ns=BASE,
                                       xsi_type="p:ReversalAdviceReq", dt=dt2, un=un2))
    assert again.payload.get("txReversed") == "true"  # idempotent
    assert client.advice("LastRespAdviceReq", dt, un).fault_type == "BusinessRuleEx"
    # a sale whose answer was sent again is not reversed
    client.vend(msno, "25")
    dt, un = client.last_msg
    client.vend(msno, "25", dt=dt, un=un)
    rev = client.advice("ReversalAdviceReq", dt, un)
    assert rev.payload.get("txReversed") == "false"
    assert client.advice("ReversalAdviceReq", "9", "9").fault_type == "ReversalEx"
    with svc.db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(transactions)
                           .where(transactions.c.kind == "reversal")) == 1


def test_trial_vend_is_all_zeros_and_stores_nothing(client: Client) -> None:
    r = client.vend(drn_of(known_pan()), "50", root="trialCreditVendReq")
    assert r.status == 200, r.text
    validate(r.payload)
    assert {c.text for c in r.find(".//b:stsCipher")} == {"0" * 20}
    with client.http.app.state.service.db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(transactions)) == 0


def test_confirm_customer_and_meter(client: Client, profile: str) -> None:
    r = client.confirm(drn_of(known_pan()))
    assert r.status == 200, r.text
    validate(r.payload)
    assert r.first(".//r:canVend").text == "true"
    assert r.first(".//r:minVendAmt").get("value") == "5.00"
    assert r.first(".//r:meterDetail").get("msno") == drn_of(known_pan())
    inner = (f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
             f'xsi:type="MeterNumber" msno="{drn_of(known_pan())}"/></idMethod>')
    m = client.post(client.request("confirmMeterReq", inner,
                                   ns="http://www.nrs.eskom.co.za/xmlvend/meter/2.1/schema"))
    assert m.status == 200, m.text
    validate(m.payload)
    unknown = client.confirm("01234567897")
    assert unknown.status == 500 and unknown.fault_type in ("UnknownMeterEx",
                                                            "MSNOCheckDigitEx")
    bad = client.confirm("01234567890")
    assert bad.fault_type == "MSNOCheckDigitEx"


def test_login(client: Client) -> None:
    r = client.post(client.request("loginReq", ""))
    assert r.status == 200, r.text
    validate(r.payload)
    assert r.first("r:MinVendAmt").text == "5" and r.first("r:MaxVendAmt").text == "5000"
    assert Decimal(text_of(r.first("r:CDUBalance"))) > 0


def test_reprint_by_meter_and_month_range(client: Client) -> None:
    msno = drn_of(known_pan())
    first = client.vend(msno, "20")
    client.vend(msno, "30")
    r = client.post(client.request("reprintReq", client_vend_id(msno)))
    assert r.status == 200, r.text
    validate(r.payload)
    assert len(r.find("r:reprint")) == 1
    month = datetime(2025, 3, 3).strftime("%Y%m")
    r = client.post(client.request("reprintReq", client_vend_id(msno),
                                   terminal=f"R{month},{month}"))
    assert len(r.find("r:reprint")) == 2
    validate(r.payload)
    token = text_of(first.first(".//b:stsCipher"))
    assert token in r.text
    none = client.post(client.request("reprintReq", client_vend_id(msno), terminal="R202001"))
    assert none.fault_type == "ReprintEx"


def client_vend_id(msno: str) -> str:
    return (f'<p:idMethod xsi:type="VendIDMethod"><meterIdentifier xmlns="{BASE}" '
            f'xsi:type="MeterNumber" msno="{msno}"/></p:idMethod>')


def test_fbe_alone_once_a_month(demo: Demo, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    pan = rich_meter(demo, debt="0")
    meter = virtual_meter(pan, demo.clock, sgc=SGC)
    inner = f'<resource xmlns="{BASE}" xsi:type="Electricity"/>' + (
        f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
        f'xsi:type="MeterNumber" msno="{drn_of(pan)}"/></idMethod>')
    r = c.post(c.request("fbeReq", inner))
    assert r.status == 200, r.text
    validate(r.payload)
    assert xtype(r.first(".//r:creditTokenIssue")) == "FBECredTokenIssue"
    for t in r.tokens():
        assert meter.enter(t).result == "accept"
    again = c.post(c.request("fbeReq", inner))
    assert again.fault_type == "FBEEx"


def test_engineering_tokens(demo: Demo, profile: str) -> None:
    register(demo, profile=profile, op="eng1", role="engineer")
    c = Client(demo.client, op="eng1")
    pan = known_pan()
    meter = virtual_meter(pan, demo.clock)
    M = "http://www.nrs.eskom.co.za/xmlvend/meter/2.1/schema"
    base = f'<resource xmlns="{BASE}" xsi:type="Electricity"/>' + (
        f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
        f'xsi:type="MeterNumber" msno="{drn_of(pan)}"/></idMethod>')
    for kind, extra in (("ClearCreditReq", ""), ("ClearTamperReq", ""),
                        ("PwrLmtReq", '<p:pwrLmt value="5" siUnit="kW"/>'),
                        ("PhUnbalReq", '<p:pwrLmt value="700" siUnit="W"/>')):
        demo.clock.advance(minutes=1)
        r = c.post(c.request("meterSpecificEngReq", base + extra, ns=M, xsi_type=f"p:{kind}"))
        assert r.status == 200, r.text
        validate(r.payload)
        token = r.first(".//b:stsCipher").text
        assert meter.enter(token).result == "accept", kind
    unsupported = c.post(c.request("meterSpecificEngReq", base, ns=M,
                                   xsi_type="p:SetWaterFactorReq"))
    assert unsupported.fault_type == "UseCaseSupportEx"
    seller = c.vend(drn_of(pan), "20")
    assert seller.fault_type == "RequestAuthorisationEx"


def test_update_meter_key(demo: Demo, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    pan = rich_meter(demo, debt="0")
    meter = virtual_meter(pan, demo.clock, sgc=SGC)
    M = "http://www.nrs.eskom.co.za/xmlvend/meter/2.1/schema"
    inner = (f'<p:idMethod xsi:type="b:MeterDetail" xmlns:b="{BASE}" msno="{drn_of(pan)}" '
             f'sgc="{SGC}" krn="1" ti="01"><b:meterType at="07" tt="02"/></p:idMethod>')
    same = c.post(c.request("updateMeterKeyReq", inner, ns=M))
    assert same.fault_type == "UpdateMtrKeySameEx", same.text
    demo.registry.add_key(SGC, 2, raw=NEW_KEY, base_date=2014)
    r = c.post(c.request("updateMeterKeyReq", inner, ns=M))
    assert r.status == 200, r.text
    validate(r.payload)
    for t in r.tokens() or [text_of(x) for x in r.find(".//b:stsCipher")]:
        assert meter.enter(t).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 2


def test_verify_a_sold_token(client: Client) -> None:
    msno = drn_of(known_pan())
    sold = client.vend(msno, "20")
    token = sold.first(".//b:stsCipher").text
    inner = (f'<p:token xmlns:b="{BASE}" xsi:type="b:STS1Token"><b:stsCipher>{token}'
             f'</b:stsCipher></p:token>' + f'<p:idMethod xsi:type="VendIDMethod">'
             f'<meterIdentifier xmlns="{BASE}" xsi:type="MeterNumber" msno="{msno}"/>'
             '</p:idMethod>')
    r = client.post(client.request("verifyReq", inner))
    assert r.status == 200, r.text
    validate(r.payload)


def test_refusals_map_to_fault_types(demo: Demo, profile: str) -> None:
    register(demo, profile=profile)
    c = Client(demo.client)
    msno = drn_of(known_pan())
    assert c.vend(msno, "1").fault_type == "BusinessRuleEx"  # below the minimum
    high = c.vend(msno, "6000")
    assert high.fault_type == "BusinessRuleEx" and "maximum purchase is 5000" in high.text
    demo.registry.set_meter_status(known_pan(), "blocked", "tamper")
    assert c.vend(msno, "20").fault_type == "BlockedMeterEx"
    assert c.vend(msno, "20", password="wrong-password").fault_type == "RequestAuthorisationEx"
    stranger = Client(demo.client, client_id="9999999999999")
    r = stranger.vend(msno, "20")
    assert r.status == 500 and r.fault_type == "ClientIDAuthorisationEx"
    validate(r.payload)
    assert "faultstring" in r.text
    demo.registry.add_vendor("Poor Vendor", float_balance="1", sgcs=["999910"])
    register(demo, client_id="1111111111116", vendor="Poor Vendor")
    poor = Client(demo.client, client_id="1111111111116")
    assert poor.vend(drn_of(demo.meters[0]), "20").fault_type == "VendorCreditEx"
    assert poor.vend(msno, "20").fault_type in ("SGCAuthorisationEx", "BlockedMeterEx")
    assert poor.vend(drn_of(demo.meters[1]), "20").fault_type == "VendorCreditEx"
    other = pan_for(99)
    assert c.vend(drn_of(other), "20").fault_type == "UnknownMeterEx"
    units = c.post(c.request("creditVendReq", (
        f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
        f'xsi:type="MeterNumber" msno="{drn_of(demo.meters[0])}"/></idMethod>'
        '<p:purchaseValue xsi:type="p:PurchaseValueUnits"><p:units value="5" siUnit="kWh"/>'
        "</p:purchaseValue>")))
    assert units.fault_type == "UseCaseSupportEx"


def test_unsupported_and_unknown_requests(client: Client) -> None:
    r = client.post(client.request("payAccReq", ""))
    assert r.status == 500 and r.fault_type == "UseCaseSupportEx"
    validate(r.payload)
    r = client.post(client.request("noSuchReq", ""))
    assert r.fault_type == "XMLVendSchemaEx"
    r = client.post(client.request("creditVendReq", ""))
    assert r.fault_type == "XMLVendSchemaEx" and "idMethod" in r.text


def test_other_vendor_sales_are_unknown(demo: Demo) -> None:
    register(demo)
    c = Client(demo.client)
    demo.registry.add_vendor("Other Vendor", float_balance="1000", sgcs=["999910"])
    register(demo, client_id="2222222222222", vendor="Other Vendor")
    other = Client(demo.client, client_id="2222222222222")
    msno = drn_of(demo.meters[0])
    c.vend(msno, "20")
    r = other.post(other.request("reprintReq", client_vend_id(msno)))
    assert r.fault_type == "ReprintEx", r.text

