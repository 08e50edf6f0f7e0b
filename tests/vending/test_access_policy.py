"""One access policy on every face: a caller bound to a vendor sees, reprints, reverses,
resends and reports only its own vendor's sales; another vendor's sale answers as if it did
not exist (404 / the face's "unknown"), never 403; a reversal is recorded against the vendor
that sold; a sale is confirmed or reversed once, whichever face asks first."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from sts.errors import NotAuthorised, UnknownRecord
from sts.vending.access.policy import (
    EVERY_VENDOR,
    NO_VENDOR,
    PERMISSIONS,
    ROLES,
    Caller,
    vendor_filter,
)
from tests.fixtures import Demo, vendor_float
from tests.support.electrum import make_switch

# --- the policy alone (no database, no HTTP) -------------------------------------------------


def test_vendor_scope_of_each_kind_of_caller() -> None:
    assert Caller(1, "vendor", "till", 7).vendor_scope() == 7
    assert Caller(1, "supervisor", "boss", 7).vendor_scope() == 7
    assert Caller(1, "supervisor", "head office", None).vendor_scope() is EVERY_VENDOR
    for role in ("admin", "auditor", "engineer"):
        assert Caller(1, role, "x", None).vendor_scope() is EVERY_VENDOR
    # a vendor role without a vendor is bound to nothing: it sees no sale
    lost = Caller(1, "vendor", "orphan", None)
    assert lost.vendor_scope() == NO_VENDOR and not lost.sees(None) and not lost.sees(7)


def test_sees_and_must_see() -> None:
    mine, other = Caller(1, "supervisor", "a", 7), Caller(2, "supervisor", "b", 8)
    assert mine.sees(7) and not mine.sees(8) and not mine.sees(None)
    assert other.sees(8) and not other.sees(7)
    with pytest.raises(UnknownRecord) as err:
        other.must_see(7, "purchase P1", "purchase_id")
    assert err.value.code == "UNKNOWN_RECORD" and err.value.field == "purchase_id"
    head = Caller(3, "admin", "c", None)
    assert head.sees(7) and head.sees(None)
    assert vendor_filter(head.vendor_scope()) is None and vendor_filter(mine.vendor_scope()) == 7


def test_permissions_are_the_one_table() -> None:
    for action, roles in PERMISSIONS.items():
        assert roles <= set(ROLES), action
        for role in ROLES:
            caller = Caller(1, role, "x", None)
            assert caller.may(action) == (role in roles)
            if role not in roles:
                with pytest.raises(NotAuthorised):
                    caller.require(action)
    # an engineer may watch deliveries but never read or resend a sale's tokens
    assert "engineer" in PERMISSIONS["deliveries"]
    assert "engineer" not in PERMISSIONS["resend"] | PERMISSIONS["read_sale"]


# --- REST (/v1) ------------------------------------------------------------------------------


def _other_vendor(demo: Demo) -> dict[str, str]:
    """A second vendor selling the same meters, with its own cashier and supervisor keys,
    and a utility-wide supervisor key."""
    reg = demo.registry
    reg.add_vendor("Other Vendor", float_balance="5000", sgcs=["999910", "999920"])
    return {"vendor": reg.add_api_key("vendor", vendor="Other Vendor"),
            "supervisor": reg.add_api_key("supervisor", vendor="Other Vendor"),
            "head": reg.add_api_key("supervisor")}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}



def test_rest_another_vendors_sale_does_not_exist(demo: Demo) -> None:
    other = _other_vendor(demo)
    sale = demo.buy(amount="50")
    assert sale.status_code == 201, sale.text
    pid, receipt = sale.json()["purchase_id"], sale.json()["receipt"]["receipt_no"]
    c = demo.client
    for role in ("vendor", "supervisor"):
        h = _auth(other[role])
        got = c.get(f"/v1/purchases/{pid}", headers=h)
        assert got.status_code == 404 and got.json()["code"] == "UNKNOWN_RECORD", got.text
        for body in ({"receipt_no": receipt}, {"meter": demo.meters[0]}):
            got = c.post("/v1/reprints", json=body, headers=h)
            assert got.status_code == 404, (role, body, got.text)
        got = c.post(f"/v1/purchases/{pid}/deliveries", json={"channel": "sms", "to": "+27821234567"},
                     headers=h)
        assert got.status_code == 404, got.text
        listed = c.get(f"/v1/deliveries?purchase_id={pid}", headers=h)
        assert listed.status_code == 200 and listed.json()["deliveries"] == []
    got = c.post(f"/v1/purchases/{pid}/reversals", json={"reason": "not mine"},
                 headers=_auth(other["supervisor"]))
    assert got.status_code == 404, got.text
    # the sale's own vendor still sees it, untouched
    own = c.get(f"/v1/purchases/{pid}", headers=demo.h("supervisor"))
    assert own.status_code == 200 and own.json()["status"] == "completed"
    assert vendor_float(demo, "Demo Vendor") == Decimal("1000000") - Decimal("50")


def test_rest_engineer_may_not_read_or_resend_tokens(demo: Demo) -> None:
    pid = demo.buy(amount="20").json()["purchase_id"]
    c = demo.client
    assert c.get(f"/v1/purchases/{pid}", headers=demo.h("engineer")).status_code == 403
    got = c.post(f"/v1/purchases/{pid}/deliveries",
                 json={"channel": "email", "to": "someone@example.com"},
                 headers=demo.h("engineer"))
    assert got.status_code == 403 and got.json()["code"] == "NOT_AUTHORISED", got.text
    listed = c.get("/v1/deliveries", headers=demo.h("engineer"))
    assert listed.status_code == 200
    assert all("token" not in str(d.get("tokens", "")) for d in listed.json()["deliveries"])


def test_reversal_is_recorded_against_the_vendor_that_sold(demo: Demo) -> None:
    from sqlalchemy import select

    from sts.vending.storage.tables import transactions

    other = _other_vendor(demo)
    pid = demo.buy(amount="50").json()["purchase_id"]
    start = demo.clock() - timedelta(days=1)
    # a utility-wide supervisor (no vendor) reverses: the reversal is Demo Vendor's
    got = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "meter fault"},
                           headers=_auth(other["head"]))
    assert got.status_code == 201, got.text
    with demo.service.db.read() as conn:
        rows = conn.execute(select(transactions.c.kind, transactions.c.vendor_id,
                                   transactions.c.request_id)
                            .order_by(transactions.c.seq)).all()
    sale, reversal = rows[-2], rows[-1]
    assert reversal.kind == "reversal" and reversal.vendor_id == sale.vendor_id is not None
    assert reversal.request_id.startswith("~")  # outside the clients' id grammar
    assert vendor_float(demo, "Demo Vendor") == Decimal("1000000")
    from sts.vending import reports

    recon = {r["vendor"]: r for r in reports.reconciliation(
        demo.service.db, start, demo.clock() + timedelta(days=1))["rows"]}
    demo_row, other_row = recon["Demo Vendor"], recon["Other Vendor"]
    assert (demo_row["opening"], demo_row["sales"], demo_row["reversals"]) == \
        ("1000000.00", "50.00", "50.00"), demo_row
    assert (other_row["sales"], other_row["reversals"]) == ("0.00", "0.00"), other_row


def test_a_purchase_named_like_a_reversal_blocks_nothing(demo: Demo) -> None:
    pid = demo.buy(amount="10").json()["purchase_id"]
    decoy = demo.buy(amount="10", pid=f"reversal:{pid}")
    assert decoy.status_code == 201, decoy.text
    got = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                           headers=demo.h("supervisor"))
    assert got.status_code == 201, got.text
    again = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                             headers=demo.h("supervisor"))
    assert again.status_code == 200 and again.json() == got.json()


def test_longest_ids_can_be_reversed(demo: Demo) -> None:
    pid = "p" * 64
    assert demo.buy(amount="10", pid=pid).status_code == 201
    got = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                           headers=demo.h("supervisor"))
    assert got.status_code == 201, got.text
    assert len(got.json()["reversal_id"]) <= 64


def test_scoped_reports(demo: Demo) -> None:
    other = _other_vendor(demo)
    demo.buy(amount="30")
    demo.client.post(f"/v1/purchases/x{'1' * 20}", json={"meter": demo.meters[1], "amount": "7"},
                     headers=_auth(other["vendor"]))
    svc = demo.service
    start, end = demo.clock() - timedelta(days=1), demo.clock() + timedelta(days=1)
    mine = svc.report(Caller(0, "supervisor", "b", _vendor_id(demo, "Other Vendor")),
                      start, end, "vendor")
    assert [r["key"] for r in mine["sales"]["rows"]] == ["Other Vendor"]
    assert [r["vendor"] for r in mine["recon"]["rows"]] == ["Other Vendor"]
    everyone = svc.report(Caller(0, "admin", "a", None), start, end, "vendor")
    assert {r["key"] for r in everyone["sales"]["rows"]} == {"Demo Vendor", "Other Vendor"}


def _vendor_id(demo: Demo, name: str) -> int:
    from sqlalchemy import select

    from sts.vending.storage.tables import vendors

    with demo.service.db.read() as conn:
        return int(conn.scalar(select(vendors.c.id).where(vendors.c.name == name)))


# --- confirmed or reversed once, across faces ----------------------------------------------


def test_confirmed_on_electrum_then_reversed_on_rest(demo: Demo) -> None:
    switch = make_switch(demo)
    pid, _ = _electrum_sale(switch, demo)
    assert switch.confirm(pid).status_code == 202
    got = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "too late"},
                           headers=demo.h("supervisor"))
    assert got.status_code == 409 and got.json()["code"] == "REVERSAL_NOT_ALLOWED", got.text
    assert "confirmed" in got.json()["message"]


def test_reversed_on_rest_then_confirmed_on_electrum(demo: Demo) -> None:
    switch = make_switch(demo)
    pid, _ = _electrum_sale(switch, demo)
    got = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "no token"},
                           headers=demo.h("supervisor"))
    assert got.status_code == 201, got.text
    conf = switch.confirm(pid)
    assert conf.status_code >= 400, conf.text  # the interface's "already reversed"
    assert "reversed" in conf.text
    # a reversal advice after it: idempotent, the sale stays reversed once
    rev = switch.reverse(pid)
    assert rev.status_code == 202, rev.text
    assert demo.client.get(f"/v1/purchases/{pid}",
                           headers=demo.h("supervisor")).json()["status"] == "reversed"


def test_electrum_credential_of_another_vendor(demo: Demo) -> None:
    _other_vendor(demo)
    mine, theirs = make_switch(demo), make_switch(demo, vendor="Other Vendor")
    pid, _ = _electrum_sale(mine, demo)
    conf = theirs.confirm(pid)
    assert conf.status_code == 404, conf.text
    rev = theirs.reverse(pid)
    assert rev.status_code in (202, 404), rev.text
    own = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("supervisor")).json()
    assert own["status"] == "completed" and own["state"] == "issued"


def _electrum_sale(switch: Any, demo: Demo) -> tuple[str, Any]:
    from tests.fixtures import known_pan
    from tests.support.electrum import new_id

    pid = new_id()
    got = switch.buy(known_pan(), 5000, pid=pid)
    assert got.status_code == 201, got.text
    return pid, got


# --- web -------------------------------------------------------------------------------------


def test_web_reversal_of_another_vendors_sale(demo: Demo) -> None:
    from sts.vending.access import operators

    other = _other_vendor(demo)
    del other
    pid = demo.buy(amount="40").json()["purchase_id"]
    op = operators.Operator(0, "sup", "Sup", "supervisor",
                            vendor_id=_vendor_id(demo, "Other Vendor"), vendor="Other Vendor")
    caller = operators.caller(demo.service.db, _persisted(demo, op), now=demo.clock())
    with pytest.raises(UnknownRecord):
        demo.service.reverse(pid, "not mine", caller)
    with pytest.raises(UnknownRecord):
        demo.service.get_purchase(pid, caller)


def _persisted(demo: Demo, op: Any) -> Any:
    from sts.vending.access import operators
    from sts.vending.registry import operators as operator_admin

    operator_admin.add_operator(demo.registry, op.username, op.role, "a long enough secret",
                                vendor=op.vendor)
    found, _token = operators.sign_in(demo.service.db, op.username, "a long enough secret",
                                      address="t", now=demo.clock())
    return found


def test_web_reversals_page_shows_and_reverses_own_vendors_sales_only(demo: Demo) -> None:
    from sts.vending.access import operators
    from sts.vending.registry import operators as operator_admin
    from sts.web.common import COOKIE

    _other_vendor(demo)
    sale = demo.buy(amount="40").json()
    pid, receipt = sale["purchase_id"], sale["receipt"]["receipt_no"]
    operator_admin.add_operator(demo.registry, "other-sup", "supervisor", "a long enough secret",
                                vendor="Other Vendor")
    op, token = operators.sign_in(demo.service.db, "other-sup", "a long enough secret",
                                  address="t", now=demo.clock())
    c = demo.client
    c.cookies.set(COOKIE, token)
    try:
        page = c.get(f"/admin/reversals?meter={demo.meters[0]}")
        assert page.status_code == 200 and pid not in page.text and receipt not in page.text
        for form in ({"purchase_id": pid}, {"receipt_no": receipt}):
            got = c.post("/admin/reversals", data={**form, "meter": demo.meters[0],
                                                   "reason": "not mine", "csrf": op.csrf},
                         follow_redirects=False)
            assert got.status_code == 404, (form, got.status_code)
    finally:
        c.cookies.clear()
    own = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("supervisor")).json()
    assert own["status"] == "completed"


def test_limits_before_float(demo: Demo) -> None:
    """An amount over the meter's maximum is AMOUNT_TOO_HIGH, even for a vendor whose float
    could not pay for it (it was INSUFFICIENT_FLOAT)."""
    reg = demo.registry
    reg.add_vendor("Small Vendor", float_balance="5", sgcs=["999910"])
    key = reg.add_api_key("vendor", vendor="Small Vendor")
    got = demo.client.post("/v1/purchases/small-vendor-0001",
                           json={"meter": demo.meters[0], "amount": "1000000000"},
                           headers=_auth(key))
    assert got.status_code in (409, 422) and got.json()["code"] == "AMOUNT_TOO_HIGH", got.text
    got = demo.client.post("/v1/purchases/small-vendor-0002",
                           json={"meter": demo.meters[0], "amount": "50"}, headers=_auth(key))
    assert got.json()["code"] == "INSUFFICIENT_FLOAT", got.text
