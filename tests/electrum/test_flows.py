"""The digest's flows over HTTP on SQLite and PostgreSQL: lookup -> purchase -> confirm,
purchase -> retry -> confirm, purchase -> reverse, unmatched advices, key change request ->
confirm, fault report, reprint, trial, notification; every envelope field checked as echoed;
tokens checked on the virtual meter."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from sts.engine import decode
from sts.vending import messages
from sts.vending.storage.tables import tokens, vendors
from tests.fixtures import known_pan, meter_key, virtual_meter
from tests.support.electrum import ORIGINATOR, Switch, drn_of, envelope, new_id

ENVELOPE_KEYS = ("id", "time", "originator", "client", "settlementEntity", "receiver",
                 "basketRef", "tranType", "srcAccType", "destAccType", "stan", "rrn")


def check_echo(sent: dict[str, Any], got: dict[str, Any]) -> None:
    """Every envelope field comes back exactly as sent; our reference is appended once."""
    for key in ENVELOPE_KEYS:
        assert got[key] == sent[key], key
    assert got["time"] == "2025-03-03T10:00:00.123+02:00"
    tpis = got["thirdPartyIdentifiers"]
    assert tpis[: len(sent["thirdPartyIdentifiers"])] == sent["thirdPartyIdentifiers"]
    assert [t["institutionId"] for t in tpis].count("STS-VENDING") == 1


def float_of(switch: Switch) -> Decimal:
    with switch.demo.service.db.read() as conn:
        return Decimal(conn.scalar(select(vendors.c.float_balance)
                                   .where(vendors.c.name == "Demo Vendor")))


def test_lookup_purchase_confirm(switch: Switch) -> None:
    pan = known_pan()
    lid = new_id()
    look = switch.lookup(drn_of(pan), lid)
    assert look.status_code == 201, look.text
    body = look.json()
    check_echo(envelope(lid), body)
    assert body["meter"] == {"meterId": drn_of(pan), "serviceType": "ELEC",
                             "supplyGroupCode": "999920", "keyRevisionNum": "1",
                             "tariffIndex": "01", "tokenTechCode": "02", "algorithmCode": "07"}
    assert body["minAmount"] == {"amount": 500, "currency": "710"}
    assert body["maxAmount"] == {"amount": 500000, "currency": "710"}
    assert body["bsstDue"] is False and body["customer"] == {}

    before = float_of(switch)
    r = switch.buy(drn_of(pan), 10000)
    assert r.status_code == 201, r.text
    sale = r.json()
    check_echo(switch.sent[sale["id"]], sale)
    (tok,) = sale["tokens"]
    assert tok["tokenType"] == "STD" and tok["units"] == 34.7
    assert tok["amount"] == {"amount": 8696, "currency": "710", "tax": 1304, "taxType": "VAT",
                             "taxRate": 15}
    assert tok["receiptNum"] == sale["vatInvoiceNumber"] == sale["slipData"]["issuerReference"]
    assert sale["thirdPartyIdentifiers"][-1] == {"institutionId": "STS-VENDING",
                                                  "transactionIdentifier": tok["receiptNum"]}
    assert sale["purchaseTotal"] == {"amount": 8696, "currency": "710"}
    assert sale["taxTotal"] == {"amount": 1304, "currency": "710"}
    assert sale["utilityType"] == "ELECTRICITY" and sale["utility"]["name"] == "Demo Utility"
    assert any(tok["token"][:4] in line["text"] for line in sale["slipData"]["messageLines"])
    assert float_of(switch) == before - 100
    meter = virtual_meter(pan, switch.demo.clock)
    assert meter.enter(tok["token"]).result == "accept"

    # the confirmation carries back the thirdPartyIdentifiers of the response
    aid = new_id()
    conf = switch.advice(sale["id"], aid, tpis=sale["thirdPartyIdentifiers"], tenders=[])
    c = switch.post(f"/tokenPurchases/{sale['id']}/confirmations/{aid}", conf)
    assert c.status_code == 202, c.text
    assert c.json()["id"] == aid and c.json()["requestId"] == sale["id"]
    assert c.json()["thirdPartyIdentifiers"] == sale["thirdPartyIdentifiers"]
    assert c.json()["time"] == conf["time"] and c.json()["stan"] == conf["stan"]
    again = switch.post(f"/tokenPurchases/{sale['id']}/confirmations/{aid}", conf)
    assert again.status_code == 202 and again.json() == c.json()
    v1 = switch.demo.client.get(f"/v1/purchases/{sale['id']}", headers=switch.demo.h("vendor"))
    assert v1.json()["state"] == "confirmed" and v1.json()["advice"]["confirmation_id"] == aid
    # a reversal after the confirmation is refused: the sale stands
    rev = switch.reverse(sale["id"])
    assert rev.status_code == 400 and rev.json()["errorType"] == "TRANSACTION_NOT_SUPPORTED"
    assert rev.json()["requestType"] == "REVERSAL_ADVICE"
    assert rev.json()["originalId"] == sale["id"]
    assert float_of(switch) == before - 100


def test_purchase_retry_confirm(switch: Switch) -> None:
    pan = known_pan()
    first = switch.buy(pan, "2500")  # the amount as a string of digits, and the 18-digit PAN
    assert first.status_code == 201, first.text
    pid = first.json()["id"]
    for _ in range(3):
        r = switch.retry(pid)
        assert r.status_code == 202, r.text
        assert r.json()["tokens"] == first.json()["tokens"]
        assert r.json()["id"] != pid and r.json()["meter"]["meterId"] == pan
        check_echo(dict(switch.sent[pid], id=r.json()["id"]), r.json())
    same_id = switch.retry(pid, new_envelope=False)
    assert same_id.status_code == 202 and same_id.json()["tokens"] == first.json()["tokens"]
    # a retry is not a new purchase: a second sale never happens
    with switch.demo.service.db.read() as conn:
        assert len(conn.execute(select(tokens.c.id)).all()) == 1
    changed = dict(switch.sent[pid], purchaseAmount={"amount": 3000, "currency": "710"})
    bad = switch.post(f"/tokenPurchases/{pid}/retry", changed)
    assert bad.status_code == 400 and bad.json()["errorType"] == "DUPLICATE_RECORD"
    assert switch.confirm(pid).status_code == 202


def test_retry_of_an_unseen_purchase_sells_once(switch: Switch) -> None:
    body = switch.purchase_request(known_pan(), 2000)
    switch.sent[body["id"]] = body
    r = switch.post(f"/tokenPurchases/{body['id']}/retry", body)
    assert r.status_code == 202, r.text
    again = switch.retry(body["id"])
    assert again.json()["tokens"] == r.json()["tokens"]
    dup = switch.post(f"/tokenPurchases/{body['id']}", body)
    assert dup.status_code == 400 and dup.json()["errorType"] == "DUPLICATE_RECORD"


def test_purchase_reverse(switch: Switch) -> None:
    pan = known_pan()
    before = float_of(switch)
    sale = switch.buy(pan, 5000).json()
    key = meter_key(pan)
    tid = decode(sale["tokens"][0]["token"], key).tid
    assert tid is not None
    assert float_of(switch) == before - 50
    rid = new_id()
    rev = switch.reverse(sale["id"], rid, reason="TIMEOUT")
    assert rev.status_code == 202, rev.text
    assert rev.json()["id"] == rid
    assert float_of(switch) == before  # the float is given back
    assert switch.reverse(sale["id"], rid, reason="TIMEOUT").status_code == 202  # repeat
    assert switch.reverse(sale["id"]).status_code == 202  # another advice id, same sale
    assert float_of(switch) == before
    v1 = switch.demo.client.get(f"/v1/purchases/{sale['id']}", headers=switch.demo.h("vendor"))
    assert v1.json()["status"] == "reversed" and v1.json()["state"] == "reversed"
    assert "TIMEOUT" in v1.json()["advice"]["reason"]
    conf = switch.confirm(sale["id"])
    assert conf.status_code == 400 and conf.json()["errorType"] == "TRANSACTION_NOT_SUPPORTED"
    # the TID stays burnt: the next token has a later one
    switch.demo.clock.advance(minutes=1)
    nxt = switch.buy(pan, 5000).json()
    next_tid = decode(nxt["tokens"][0]["token"], key).tid
    assert next_tid is not None and next_tid > tid
    # a retry of the reversed purchase still tells the original answer
    assert switch.retry(sale["id"]).json()["tokens"] == sale["tokens"]


def test_unmatched_and_mismatched_advices(switch: Switch) -> None:
    ghost = new_id()
    r = switch.confirm(ghost)
    assert r.status_code == 404, r.text
    assert r.json()["errorType"] == "UNABLE_TO_LOCATE_RECORD"
    assert r.json()["originalId"] == ghost
    # a reversal advice for a purchase never seen is accepted and remembered (below)
    assert switch.reverse(ghost).status_code == 202
    sale = switch.buy(known_pan(), 1000).json()
    aid = new_id()
    body = switch.advice(sale["id"], aid, tenders=[])
    wrong = switch.post(f"/tokenPurchases/{sale['id']}/confirmations/{new_id()}", body)
    assert wrong.status_code == 400 and wrong.json()["errorType"] == "FORMAT_ERROR"
    assert wrong.json()["detailMessage"]["field"] == "id"
    # an advice id is its own: reusing it for another purchase is a duplicate
    assert switch.confirm(sale["id"], aid).status_code == 202
    other = switch.buy(known_pan(), 1000).json()
    dup = switch.confirm(other["id"], aid)
    assert dup.status_code == 400 and dup.json()["errorType"] == "DUPLICATE_RECORD"
    # a confirmation for a refused purchase: nothing to confirm
    low = switch.buy(known_pan(), 100)
    assert low.status_code == 400 and low.json()["errorType"] == "AMOUNT_TOO_LOW"
    assert switch.confirm(low.json()["id"]).status_code == 404
    assert switch.reverse(low.json()["id"]).status_code == 202  # nothing moved: accepted


def test_duplicate_ids(switch: Switch) -> None:
    lid = new_id()
    assert switch.lookup(known_pan(), lid).status_code == 201
    again = switch.lookup(known_pan(), lid)
    assert again.status_code == 400 and again.json()["errorType"] == "DUPLICATE_RECORD"
    assert again.json()["requestType"] == "METER_LOOKUP_REQUEST" and again.json()["id"] == lid
    used = switch.buy(known_pan(), 1000, pid=lid)
    assert used.status_code == 400 and used.json()["errorType"] == "DUPLICATE_RECORD"
    sale = switch.buy(known_pan(), 1000)
    twice = switch.post(f"/tokenPurchases/{sale.json()['id']}", switch.sent[sale.json()["id"]])
    assert twice.status_code == 400 and twice.json()["errorType"] == "DUPLICATE_RECORD"
    with switch.demo.service.db.read() as conn:
        assert len(conn.execute(select(tokens.c.id)).all()) == 1


def test_refusals(switch: Switch) -> None:
    demo = switch.demo
    cases: list[tuple[Any, int, str]] = [
        (switch.buy("12345678901"), 400, "UNKNOWN_METER_ID"),  # bad Luhn digit
        (switch.buy("04200000026"), 400, "UNKNOWN_METER_ID"),  # valid DRN, not registered
        (switch.buy(known_pan(), 100), 400, "AMOUNT_TOO_LOW"),
        (switch.buy(known_pan(), 600000), 400, "AMOUNT_TOO_HIGH"),
        (switch.buy(known_pan(), 1000, currency="840"), 400, "INVALID_AMOUNT"),
        (switch.buy(known_pan(), 1000, paymentMethods=[
            {"type": "REWARD", "rewardCode": "X"}]), 400, "FUNCTION_NOT_SUPPORTED"),
        (switch.buy(known_pan(), "10.00"), 400, "FORMAT_ERROR"),
    ]
    for r, status, error_type in cases:
        assert r.status_code == status, r.text
        assert r.json()["errorType"] == error_type, r.text
        assert len(r.json()["errorMessage"]) <= 20
        assert r.json()["requestType"] == "TOKEN_PURCHASE_REQUEST"
    demo.registry.set_meter_status(known_pan(), "blocked", "tamper")
    blocked = switch.buy(known_pan(), 1000)
    assert blocked.json()["errorType"] == "METER_ID_BLOCKED"
    assert switch.lookup(known_pan()).json()["errorType"] == "METER_ID_BLOCKED"
    demo.registry.set_meter_status(known_pan(), "active")
    with demo.service.db.begin() as conn:
        conn.execute(vendors.update().values(float_balance=Decimal("5")))
    poor = switch.buy(known_pan(), 1000)
    assert poor.status_code == 400 and poor.json()["errorType"] == "INSUFFICIENT_FUNDS"
    # a refused purchase keeps its answer: its retry says the same
    again = switch.retry(poor.json()["id"])
    assert again.status_code == 400 and again.json()["errorType"] == "INSUFFICIENT_FUNDS"


def test_validation_names_the_field(switch: Switch) -> None:
    body = switch.purchase_request(known_pan(), 1000)
    body["originator"] = dict(ORIGINATOR, terminalId="T1")
    r = switch.post(f"/tokenPurchases/{body['id']}", body)
    assert r.status_code == 400 and r.json()["errorType"] == "FORMAT_ERROR"
    assert r.json()["detailMessage"]["field"] == "originator.terminalId"
    assert r.json()["id"] == body["id"] and r.json()["requestType"] == "TOKEN_PURCHASE_REQUEST"
    del body["originator"]
    r = switch.post(f"/tokenPurchases/{body['id']}", body)
    assert r.json()["detailMessage"]["field"] == "originator"
    r = switch.demo.client.post(f"/prepaidutility/v3/tokenPurchases/{body['id']}",
                                content=b"{not json", headers=switch.headers)
    assert r.status_code == 400 and r.json()["errorType"] == "FORMAT_ERROR"
    good = switch.purchase_request(known_pan(), 1000)
    r = switch.post(f"/tokenPurchases/{new_id()}", good)
    assert r.status_code == 400 and r.json()["detailMessage"]["field"] == "id"
    # nothing was stored for any of them: the id is still free
    assert switch.post(f"/tokenPurchases/{good['id']}", good).status_code == 201


def test_authentication(switch: Switch) -> None:
    from sts.vending.access import credentials

    body = switch.purchase_request(known_pan(), 1000)
    path = f"/prepaidutility/v3/tokenPurchases/{body['id']}"
    r = switch.demo.client.post(path, json=body)
    assert r.status_code == 401 and r.json()["errorType"] == "INVALID_MERCHANT"
    assert r.headers["www-authenticate"].startswith("Basic")
    wrong = Switch(switch.demo, switch.username, "not-the-password")
    assert wrong.buy(known_pan(), 1000).status_code == 401
    bearer = switch.demo.client.post(path, json=body, headers=switch.demo.h("vendor"))
    assert bearer.status_code == 401
    credentials.revoke(switch.demo.service.db, switch.username)
    assert switch.buy(known_pan(), 1000).status_code == 401
    # a credential bound to an institution refuses another originator
    from tests.support.electrum import make_switch

    bound = make_switch(switch.demo, institution_id="7777")
    r = bound.buy(known_pan(), 1000)
    assert r.status_code == 400 and r.json()["errorType"] == "INVALID_MERCHANT"
    assert r.json()["detailMessage"]["field"] == "originator.institution.id"
    # every request is journaled with its outcome, failures included
    entries = messages.journal_entries(switch.demo.service.db)
    assert [e["http_status"] for e in entries][:4] == [401, 401, 401, 401]
    assert entries[-1]["error_type"] == "INVALID_MERCHANT"


def test_trial_and_reprint(switch: Switch) -> None:
    pan = known_pan()
    tid_ = new_id()
    trial = switch.post(f"/tokenPurchases/{tid_}/trial",
                        switch.purchase_request(drn_of(pan), 10000, pid=tid_))
    assert trial.status_code == 200, trial.text
    assert trial.json()["tokens"][0]["token"] == "0" * 20
    assert trial.json()["tokens"][0]["units"] == 34.7
    with switch.demo.service.db.read() as conn:
        assert conn.execute(select(tokens.c.id)).first() is None
    a = switch.buy(drn_of(pan), 2000).json()
    b = switch.buy(drn_of(pan), 3000).json()
    rid = new_id()
    last = switch.post(f"/tokenReprints/{rid}", envelope(rid, meter={"meterId": drn_of(pan)}))
    assert last.status_code == 200, last.text
    assert last.json()["tokens"] == b["tokens"] and last.json()["id"] == rid
    for ref in (a["vatInvoiceNumber"], a["id"]):
        rid = new_id()
        r = switch.post(f"/tokenReprints/{rid}",
                        envelope(rid, meter={"meterId": drn_of(pan)}, originalRef=ref))
        assert r.status_code == 200 and r.json()["tokens"] == a["tokens"]
    rid = new_id()
    none = switch.post(f"/tokenReprints/{rid}",
                       envelope(rid, meter={"meterId": drn_of(pan)}, originalRef="9999999"))
    assert none.status_code == 400 and none.json()["errorType"] == "UNABLE_TO_LOCATE_RECORD"


def test_fault_report_and_notification(switch: Switch) -> None:
    for spelling in ("KeepsTripping", "SERIOUS_BOX_DAMAGE"):
        fid = new_id()
        r = switch.post(f"/faultReports/{fid}", envelope(
            fid, meter={"meterId": drn_of(known_pan())}, contactNumber="0821234567",
            faultType=spelling, faultDescription="trips every evening",
            customer={"firstName": "Thandi"}))
        assert r.status_code == 201, r.text
        assert r.json()["reference"].startswith("FR") and spelling in r.json()["description"]
        check_echo(envelope(fid), r.json())
    sale = switch.buy(known_pan(), 1000).json()
    ok = switch.post(f"/events/tokenPurchases?purchaseId={sale['id']}", sale)
    assert ok.status_code == 202 and ok.content == b""
    missing = switch.post(f"/events/tokenPurchases?purchaseId={new_id()}", sale)
    assert missing.status_code == 404
    assert missing.json()["requestType"] == "NOTIFY_TOKEN_PURCHASE"


def test_another_vendors_retry_learns_nothing_and_changes_nothing(switch: Switch) -> None:
    from tests.support.electrum import make_switch

    demo = switch.demo
    demo.registry.add_vendor("Other Vendor", float_balance="1000", sgcs=["999920"])
    other = make_switch(demo, vendor="Other Vendor")
    sale = switch.buy(known_pan(), 1000).json()
    other.sent[sale["id"]] = switch.sent[sale["id"]]
    r = other.retry(sale["id"])
    assert r.status_code == 400 and r.json()["errorType"] == "DUPLICATE_RECORD"
    assert "tokens" not in r.json()
    assert other.confirm(sale["id"]).status_code == 404  # not its sale
    # a reversal advice for another vendor's sale is answered as for a purchase never seen
    # (accepted), and changes nothing
    assert other.reverse(sale["id"]).status_code == 202
    assert switch.retry(sale["id"]).json()["tokens"] == sale["tokens"]  # the owner's still works
    assert switch.confirm(sale["id"]).status_code == 202


def test_reversal_advice_before_its_purchase(switch: Switch) -> None:
    """The advice can overtake its purchase (the switch timed out and reversed at once): it
    is accepted and remembered, and the purchase that arrives later is refused and sells
    nothing; in the other order the sale is reversed, as before."""
    pan = known_pan()
    before = float_of(switch)
    pid = new_id()
    early = switch.reverse(pid, reason="TIMEOUT")
    assert early.status_code == 202, early.text
    assert switch.reverse(pid, reason="TIMEOUT").status_code == 202  # repeated: the same
    late = switch.buy(pan, 5000, pid=pid)
    assert late.status_code == 400, late.text
    assert late.json()["errorType"] == "DO_NOT_HONOR"
    assert "tokens" not in late.json()
    assert float_of(switch) == before
    v1 = switch.demo.client.get(f"/v1/purchases/{pid}", headers=switch.demo.h("vendor"))
    assert v1.status_code == 404  # nothing was sold
    # the usual order still reverses the sale
    sale = switch.buy(pan, 5000).json()
    assert float_of(switch) == before - 50
    assert switch.reverse(sale["id"]).status_code == 202
    assert float_of(switch) == before
