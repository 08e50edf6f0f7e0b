"""The REST API through HTTP: every endpoint, role and error code (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sts.engine import decode
from tests.fixtures import Demo, known_pan, meter_key, virtual_meter


def decode_all(resp: dict[str, Any], pan: str) -> list[Any]:
    key = meter_key(pan)
    return [decode(t["token"], key) for t in resp["tokens"]]


def test_purchase_contract_and_virtual_meter(demo: Demo) -> None:
    pan = known_pan()
    pid = str(uuid.uuid4())
    r = demo.buy(pan, "100.00", pid)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["purchase_id"] == pid
    (tok,) = body["tokens"]
    assert len(tok["token"]) == 20 and tok["token"].isdigit()
    assert tok["class"] == 0 and tok["subclass"] == 0 and tok["units"] == "34.7"
    rec = body["receipt"]
    assert rec["amount"] == "100.00" and rec["vat"]["amount"] == "13.04"
    assert rec["energy_net"] == "86.96" and rec["receipt_no"].isdigit()
    assert rec["customer"] is None and rec["vendor"]["name"] == "Demo Vendor"
    assert tok["token"][:4] in body["slip"]
    (d,) = decode_all(body, pan)
    assert d.fields["units"] == "34.7" and d.tid == tok["tid"]
    meter = virtual_meter(pan, demo.clock)
    result = meter.enter(tok["token"])
    assert result.result == "accept", result


def test_repeat_returns_stored_and_conflict(demo: Demo) -> None:
    pid = str(uuid.uuid4())
    first = demo.buy(amount="50", pid=pid)
    again = demo.buy(amount="50.0", pid=pid)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    other = demo.buy(amount="60", pid=pid)
    assert other.status_code == 409 and other.json()["code"] == "DUPLICATE_REQUEST"
    got = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor"))
    assert got.status_code == 200 and got.json()["tokens"] == first.json()["tokens"]
    assert got.json()["status"] == "completed"
    missing = demo.client.get(f"/v1/purchases/{uuid.uuid4()}", headers=demo.h("vendor"))
    assert missing.status_code == 404 and missing.json()["code"] == "UNKNOWN_RECORD"


def test_tids_increase_and_skip_reserved_minute(demo: Demo) -> None:
    from sts.codec.tid import is_reserved

    demo.clock.t = demo.clock.t.replace(hour=0, minute=0)
    pan = known_pan()
    toks = [demo.buy(pan, "10").json()["tokens"][0] for _ in range(4)]
    tids = [t["tid"] for t in toks]
    assert tids == sorted(set(tids)) and not any(is_reserved(t) for t in tids)
    assert tids[1] - tids[0] == 2  # 00:00 then 00:02: 00:01 is reserved
    demo.clock.advance(minutes=10)
    meter = virtual_meter(pan, demo.clock)
    assert [meter.enter(t["token"]).result for t in toks] == ["accept"] * 4


def test_lookup(demo: Demo) -> None:
    r = demo.client.get(f"/v1/meters/{demo.meters[0]}?amount=20", headers=demo.h("vendor"))
    assert r.status_code == 200
    body = r.json()
    assert body["customer"]["account_no"] == "ACC0001"
    assert body["quote"]["units"] == "6.9" and body["key_change_due"] is False
    assert body["min_amount"] == "5.00" and body["arrears"] == "0.00"
    assert demo.client.get("/v1/meters/600727000000000009",
                           headers=demo.h("vendor")).json()["code"] == "UNKNOWN_METER"
    bad = demo.client.get("/v1/meters/12345", headers=demo.h("vendor"))
    assert bad.status_code == 422 and bad.json()["field"] == "meter"
    for role in ("supervisor", "engineer", "admin"):
        assert demo.client.get(f"/v1/meters/{demo.meters[0]}",
                               headers=demo.h(role)).status_code == 200
    assert demo.client.get(f"/v1/meters/{demo.meters[0]}",
                           headers=demo.h("auditor")).json()["code"] == "NOT_AUTHORISED"


def test_lookup_rate_limit(demo: Demo) -> None:
    demo.service.lookup_limit = 3
    codes = [demo.client.get(f"/v1/meters/{demo.meters[0]}", headers=demo.h("vendor"))
             for _ in range(5)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429, 429]
    assert codes[-1].json()["code"] == "RATE_LIMITED"
    demo.clock.advance(minutes=1)
    assert demo.client.get(f"/v1/meters/{demo.meters[0]}",
                           headers=demo.h("vendor")).status_code == 200


def test_trial_stores_nothing(demo: Demo) -> None:
    r = demo.client.post("/v1/trials", json={"meter": demo.meters[0], "amount": "100"},
                         headers=demo.h("vendor"))
    assert r.status_code == 200
    body = r.json()
    assert body["trial"] is True and body["tokens"][0]["token"] is None
    assert body["receipt"]["units"] == "34.7"
    rp = demo.client.post("/v1/reprints", json={"meter": demo.meters[0]}, headers=demo.h("vendor"))
    assert rp.status_code == 404


def test_reprint(demo: Demo) -> None:
    a = demo.buy(amount="20").json()
    b = demo.buy(amount="30").json()
    last = demo.client.post("/v1/reprints", json={"meter": demo.meters[0]},
                            headers=demo.h("vendor")).json()
    assert last["reprint"] is True and last["tokens"] == b["tokens"]
    by_no = demo.client.post("/v1/reprints", json={"receipt_no": a["receipt"]["receipt_no"]},
                             headers=demo.h("supervisor")).json()
    assert by_no["tokens"] == a["tokens"]
    assert "REPRINT" in by_no["slip"]
    assert demo.client.post("/v1/reprints", json={}, headers=demo.h("vendor")).status_code == 422
    assert demo.client.post("/v1/reprints", json={"meter": demo.meters[0]},
                            headers=demo.h("engineer")).status_code == 403


def test_reversal(demo: Demo) -> None:
    pid = str(uuid.uuid4())
    sale = demo.buy(amount="100", pid=pid).json()
    url = f"/v1/purchases/{pid}/reversals"
    assert demo.client.post(url, json={"reason": "lost"},
                            headers=demo.h("vendor")).json()["code"] == "NOT_AUTHORISED"
    assert demo.client.post(url, json={}, headers=demo.h("supervisor")).status_code == 422
    r = demo.client.post(url, json={"reason": "token never printed"},
                         headers=demo.h("supervisor"))
    assert r.status_code == 201 and r.json()["amount"] == "-100.00"
    again = demo.client.post(url, json={"reason": "token never printed"},
                             headers=demo.h("supervisor"))
    assert again.status_code == 200 and again.json() == r.json()
    rp = demo.client.post("/v1/reprints", json={"meter": demo.meters[0]},
                          headers=demo.h("vendor")).json()
    assert rp["status"] == "reversed" and rp["tokens"][0]["token"] == "0" * 20
    # the reversed TID is burnt: the next sale gets a later one
    nxt = demo.buy(amount="10").json()
    assert nxt["tokens"][0]["tid"] > sale["tokens"][0]["tid"]
    unknown = demo.client.post(f"/v1/purchases/{uuid.uuid4()}/reversals",
                               json={"reason": "xyz"}, headers=demo.h("supervisor"))
    assert unknown.status_code == 404
    from sts.vending import audit

    assert audit.verify(demo.service.db).ok


def test_float_restored_by_reversal(demo: Demo) -> None:
    from sqlalchemy import select

    from sts.vending.storage.tables import vendors

    def balance() -> Any:
        with demo.service.db.read() as conn:
            return conn.scalar(select(vendors.c.float_balance))

    start = balance()
    pid = str(uuid.uuid4())
    demo.buy(amount="75.50", pid=pid)
    assert start - balance() == pytest.approx(75.5)
    demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "never delivered"},
                     headers=demo.h("supervisor"))
    assert balance() == start


@pytest.mark.parametrize(("kind", "extra", "cls", "sub"), [
    ("clear_tamper", {}, 2, 5),
    ("clear_credit", {"register": 0}, 2, 1),
    ("power_limit", {"watts": 5000}, 2, 0),
    ("phase_unbalance", {"watts": 1000}, 2, 6),
    ("test", {}, 1, 0),
])
def test_engineering(demo: Demo, kind: str, extra: dict[str, Any], cls: int, sub: int) -> None:
    pan = known_pan()
    rid = str(uuid.uuid4())
    body = {"meter": pan, "type": kind, "reason": "work order 42", **extra}
    assert demo.client.post(f"/v1/engineering/{rid}", json=body,
                            headers=demo.h("vendor")).status_code == 403
    no_reason = {k: v for k, v in body.items() if k != "reason"}
    assert demo.client.post(f"/v1/engineering/{rid}", json=no_reason,
                            headers=demo.h("engineer")).json()["field"] == "reason"
    r = demo.client.post(f"/v1/engineering/{rid}", json=body, headers=demo.h("engineer"))
    assert r.status_code == 201, r.text
    (tok,) = r.json()["tokens"]
    assert (tok["class"], tok["subclass"]) == (cls, sub)
    d = decode(tok["token"], meter_key(pan))
    assert d.token_class == cls and d.subclass == sub
    again = demo.client.post(f"/v1/engineering/{rid}", json=body, headers=demo.h("engineer"))
    assert again.status_code == 200 and again.json() == r.json()
    res = virtual_meter(pan, demo.clock).enter(tok["token"])
    assert res.result == "accept", res


def test_engineering_bad_type(demo: Demo) -> None:
    r = demo.client.post(f"/v1/engineering/{uuid.uuid4()}",
                         json={"meter": known_pan(), "type": "explode", "reason": "because"},
                         headers=demo.h("engineer"))
    assert r.status_code == 422 and r.json()["field"] == "type"


def test_verify_token(demo: Demo) -> None:
    pan = known_pan()
    sale = demo.buy(pan, "40").json()
    tok = sale["tokens"][0]["token"]
    r = demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": tok},
                         headers=demo.h("auditor")).json()
    assert r["issued"] is True and r["decoded"]["units"] == sale["tokens"][0]["units"]
    assert r["issue"]["receipt_no"] == sale["receipt"]["receipt_no"]
    assert r["issue"]["status"] == "issued"
    # a token for another meter fails authentication
    foreign = demo.buy(demo.meters[1], "40").json()["tokens"][0]["token"]
    r2 = demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": foreign},
                          headers=demo.h("vendor")).json()
    assert r2["issued"] is False and r2["decoded"] is None
    assert r2["error"]["code"] == "TOKEN_REJECTED"
    bad = demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": "123"},
                           headers=demo.h("vendor"))
    assert bad.status_code == 422 and bad.json()["field"] == "token"


def test_errors(demo: Demo) -> None:
    pan = demo.meters[0]
    cases = [
        (demo.buy("600727000000000009", "10"), 404, "UNKNOWN_METER", "meter"),
        (demo.buy(pan, "1"), 422, "AMOUNT_TOO_LOW", "amount"),
        (demo.buy(pan, "0"), 422, "AMOUNT_TOO_LOW", "amount"),
        (demo.buy(pan, "5000.01"), 422, "AMOUNT_TOO_HIGH", "amount"),
        (demo.buy(pan, "10.001"), 422, "INVALID_AMOUNT", "amount"),
        (demo.buy(pan, "ten"), 422, "INVALID_AMOUNT", "amount"),
        (demo.buy("60072704100000019", "10"), 422, "INVALID_METER_NUMBER", "meter"),
        (demo.buy(pan, "10", role="engineer"), 403, "NOT_AUTHORISED", "authorization"),
        (demo.buy(pan, "10", role="auditor"), 403, "NOT_AUTHORISED", "authorization"),
        (demo.buy(pan, "10", pid="x"), 422, "INVALID_INPUT", "purchase_id"),
    ]
    for resp, status, code, field in cases:
        assert resp.status_code == status, resp.text
        assert resp.json()["code"] == code and resp.json()["field"] == field
    num = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", json={"meter": pan, "amount": 10},
                           headers=demo.h("vendor"))
    assert num.status_code == 422 and num.json()["field"] == "amount"
    extra = demo.buy(pan, "10", colour="red")
    assert extra.status_code == 422 and extra.json()["field"] == "colour"
    junk = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", content=b"{not json",
                            headers=demo.h("vendor") | {"content-type": "application/json"})
    assert junk.status_code == 422 and junk.json()["code"] == "INVALID_INPUT"


def test_auth(demo: Demo) -> None:
    pan = demo.meters[0]
    url = f"/v1/purchases/{uuid.uuid4()}"
    body = {"meter": pan, "amount": "10"}
    assert demo.client.post(url, json=body).json()["code"] == "NOT_AUTHENTICATED"
    assert demo.client.post(url, json=body, headers={"Authorization": "Bearer nope"}
                            ).status_code == 401
    assert demo.client.post(url, json=body, headers={"Authorization": "Basic abc"}
                            ).status_code == 401
    demo.registry.revoke_api_key(demo.keys["vendor"][:12])
    assert demo.client.post(url, json=body, headers=demo.h("vendor")).status_code == 401
    # a supervisor may sell: its key is bound to the vendor
    assert demo.buy(pan, "10", role="supervisor").status_code == 201
    # an unbound vendor key may not
    loose = demo.registry.add_api_key("vendor", label="no vendor")
    r = demo.client.post(url, json=body, headers={"Authorization": f"Bearer {loose}"})
    assert r.status_code == 403


def test_blocked_meter_float_and_sgc(demo: Demo) -> None:
    pan = demo.meters[1]
    demo.registry.set_meter_status(pan, "blocked", "tampering")
    r = demo.buy(pan, "10")
    assert r.status_code == 409 and r.json()["code"] == "METER_BLOCKED"
    demo.registry.set_meter_status(pan, "active")
    assert demo.buy(pan, "10").status_code == 201
    demo.registry.add_vendor("Tiny", float_balance="15", sgcs=["999910"])
    tiny = demo.registry.add_api_key("vendor", vendor="Tiny")
    h = {"Authorization": f"Bearer {tiny}"}
    ok = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", json={"meter": pan, "amount": "10"},
                          headers=h)
    assert ok.status_code == 201
    low = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", json={"meter": pan, "amount": "10"},
                           headers=h)
    assert low.status_code == 409 and low.json()["code"] == "INSUFFICIENT_FLOAT"
    other = demo.client.post(f"/v1/purchases/{uuid.uuid4()}",
                             json={"meter": known_pan(), "amount": "5"}, headers=h)
    assert other.status_code == 403 and other.json()["field"] == "meter"


def test_key_expired(demo: Demo) -> None:
    from datetime import timedelta

    demo.registry.add_sgc("999930", utility="Demo Utility")
    demo.registry.add_key("999930", 1, issued_until=demo.clock() + timedelta(days=1))
    demo.registry.authorise_vendor("Demo Vendor", "999930")
    from sts.codec.pan import MeterPan, luhn_check_digit

    body = "0430000001"
    pan = MeterPan.from_drn(body + str(luhn_check_digit(body))).pan
    demo.registry.add_meter(pan, sgc="999930", tariff="Flat")
    assert demo.buy(pan, "10").status_code == 201
    demo.clock.advance(days=2)
    r = demo.buy(pan, "10")
    assert r.status_code == 409 and r.json()["code"] == "KEY_EXPIRED"


def test_tariff_features(demo: Demo) -> None:
    reg = demo.registry
    reg.add_tariff("Step", blocks=[("50", "1.00"), (None, "2.00")], vat_rate="0.15",
                   fixed_monthly="11.50", debt_share="0.25", free_units="50", ti=1)
    reg.add_customer("DEBT1", "Debtor", debt="30")
    from sts.codec.pan import MeterPan, luhn_check_digit

    body = "0440000001"
    pan = MeterPan.from_drn(body + str(luhn_check_digit(body))).pan
    reg.add_meter(pan, sgc="999910", tariff="Step", customer="DEBT1")
    r = demo.buy(pan, "115")
    assert r.status_code == 201, r.text
    rec = r.json()["receipt"]
    # 11.50 fixed; 25% of 103.50 = 25.87 debt; 77.63 energy incl. VAT = 67.50 net
    assert rec["charges"][0]["amount"] == "11.50"
    assert rec["debt"][0] == {"description": "Debt recovery", "amount": "25.87",
                              "balance": "4.13"}
    assert rec["energy_net"] == "67.50" and rec["units"] == "58.7"  # 50 @1 + 8.75 @2
    kinds = [t["kind"] for t in r.json()["tokens"]]
    assert kinds == ["STD", "FBE"] and r.json()["tokens"][1]["units"] == "50.0"
    second = demo.buy(pan, "23").json()["receipt"]
    # no fixed charge or free units again this month; remaining debt 4.13 recovered
    assert second["charges"] == [] and second["debt"][0]["amount"] == "4.13"
    assert len(demo.buy(pan, "23").json()["tokens"]) == 1
    look = demo.client.get(f"/v1/meters/{pan}", headers=demo.h("vendor")).json()
    assert look["arrears"] == "0.00"


def test_audit_endpoint(demo: Demo) -> None:
    assert demo.client.get("/v1/audit/verify", headers=demo.h("vendor")).status_code == 403
    r = demo.client.get("/v1/audit/verify", headers=demo.h("auditor"))
    assert r.status_code == 200 and r.json()["ok"] is True


def test_openapi_docs(demo: Demo) -> None:
    assert demo.client.get("/docs").status_code == 200
    spec = demo.client.get("/openapi.json").json()
    assert "/v1/purchases/{purchase_id}" in spec["paths"]
