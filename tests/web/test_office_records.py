"""Row actions on the record's own page (issue 20).  An operator's page: the list links to it
and carries no forms; the page shows the account and takes the administrator's changes
(disable, a new password, another role), each audited and answered on the same page; errors
stand by their field; one's own account is not changed there.  A sale's page: the reversals
list links each sale to it, and the reversal is made there."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from sts.codec.pan import parse_pan
from sts.vending.access import operators
from sts.vending.registry import operators as operator_admin
from sts.vending.storage.tables import audit_log
from sts.web.common import COOKIE


def _admin(demo: Any, role: str = "admin") -> str:
    """Sign the demo's operator of `role` in on the demo's client; its CSRF token."""
    account = operator_admin.demo_passwords(demo.registry)[role]
    op, token = operators.sign_in(demo.service.db, account["username"], account["password"],
                                  address="t", now=demo.clock())
    demo.client.cookies.set(COOKIE, token)
    return op.csrf


def _actions(demo: Any, subject: str) -> list[str]:
    with demo.service.db.read() as conn:
        return list(conn.scalars(sa.select(audit_log.c.action)
                                 .where(audit_log.c.subject == subject)
                                 .order_by(audit_log.c.seq)))


def test_the_list_links_each_operator_to_a_page_of_its_own(demo: Any) -> None:
    _admin(demo)
    listing = demo.client.get("/admin/operators")
    assert listing.status_code == 200
    assert 'href="/admin/operators/demo-vendor"' in listing.text
    assert "/admin/operators/state" not in listing.text  # no row forms any more
    page = demo.client.get("/admin/operators/DEMO-VENDOR")  # however the name is typed
    assert page.status_code == 200
    for text in ("demo-vendor", "Demo Vendor", "Open sessions", 'action="/admin/operators/state"',
                 'action="/admin/operators/role"'):
        assert text in page.text, text
    assert demo.client.get("/admin/operators/nobody-here").status_code == 404
    own = demo.client.get("/admin/operators/demo-admin")
    assert "your own account" in own.text and "/admin/operators/state" not in own.text


def test_changes_on_the_operator_page_come_back_to_it(demo: Any) -> None:
    csrf = _admin(demo)
    back = "/admin/operators/demo-vendor"
    out = demo.client.post("/admin/operators/state", data={
        "csrf": csrf, "username": "demo-vendor", "action": "disable"}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == back + "?ok=operator-disabled"
    assert "disabled" in demo.client.get(back).text
    short = demo.client.post("/admin/operators/state", data={
        "csrf": csrf, "username": "demo-vendor", "action": "password", "password": "short"})
    assert short.status_code == 422 and 'aria-invalid="true"' in short.text
    assert "at least 10 characters" in short.text
    out = demo.client.post("/admin/operators/role", data={
        "csrf": csrf, "username": "demo-vendor", "role": "auditor", "vendor": ""},
        follow_redirects=False)
    assert out.headers["location"] == back + "?ok=operator-role"
    assert "Auditor" in demo.client.get(back).text
    refused = demo.client.post("/admin/operators/role", data={
        "csrf": csrf, "username": "demo-vendor", "role": "supervisor", "vendor": ""})
    assert refused.status_code == 422 and "needs the vendor" in refused.text
    mine = demo.client.post("/admin/operators/role", data={
        "csrf": csrf, "username": "Demo-Admin", "role": "auditor", "vendor": ""})
    assert "cannot change your own account" in mine.text
    assert _actions(demo, "demo-vendor")[-2:] == ["operator.disable", "operator.role"]


def test_a_cashier_may_not_open_an_operator_page(demo: Any) -> None:
    accounts = operator_admin.demo_passwords(demo.registry)
    _, token = operators.sign_in(demo.service.db, "demo-vendor", accounts["vendor"]["password"],
                                 address="t", now=demo.clock())
    demo.client.cookies.set(COOKIE, token)
    assert demo.client.get("/admin/operators/demo-admin").status_code == 403


def test_a_sale_is_reversed_on_its_own_page(demo: Any) -> None:
    sold = demo.buy(amount="40").json()
    pid, receipt = sold["purchase_id"], sold["receipt"]["receipt_no"]
    csrf = _admin(demo, "supervisor")
    listing = demo.client.get("/admin/reversals")
    assert f'href="/sales/{pid}"' in listing.text and 'name="reason"' not in listing.text
    page = demo.client.get(f"/sales/{pid}")
    assert page.status_code == 200 and receipt in page.text and 'name="reason"' in page.text
    short = demo.client.post("/admin/reversals", data={"csrf": csrf, "purchase_id": pid,
                                                       "reason": ""})
    assert short.status_code == 422 and receipt in short.text  # the sale's page, with the error
    out = demo.client.post("/admin/reversals", data={
        "csrf": csrf, "purchase_id": pid, "reason": "token never reached the customer"},
        follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == f"/sales/{pid}?ok=reversed"
    after = demo.client.get(out.headers["location"])
    assert 'id="sale-status">reversed' in after.text and 'name="reason"' not in after.text
    assert demo.client.get("/sales/no-such-sale").status_code == 404


def test_a_vendors_statement_is_paged_with_its_running_balance(demo: Any) -> None:
    start = demo.clock()
    for i in range(27):
        demo.registry.top_up("Demo Vendor", "1", f"EFT {i:03d}")
    demo.clock.advance(minutes=1)
    _admin(demo)
    day = start.date().isoformat()
    query = {"vendor": "Demo Vendor", "start": day, "end": day, "size": "25"}
    first = demo.client.get("/admin/vendors/statement", params=query)
    assert first.status_code == 200
    assert "1–25 of 27 movements" in first.text and "EFT 024" in first.text
    assert "EFT 025" not in first.text
    second = demo.client.get("/admin/vendors/statement", params=query | {"page": "2"})
    assert "26–27 of 27 movements" in second.text and "EFT 026" in second.text
    assert re.search(r'id="closing">[^<]*1\D000\D027', second.text)  # the whole period's
    # the CSV still holds every line
    csv = demo.client.get("/admin/vendors/statement", params=query | {"format": "csv"})
    assert csv.status_code == 200 and csv.text.count("EFT ") == 27
    bad = demo.client.get("/admin/vendors/statement", params=query | {"size": "7"})
    assert bad.status_code == 422 and "must be one of 25, 50, 100, 200" in bad.text


def test_a_statements_sale_names_the_meter_as_printed(demo: Any) -> None:
    """The vendor reads the number on the meter and the slip, never the 18-digit MeterPAN."""
    sold = demo.buy(amount="25")
    assert sold.status_code == 201
    demo.clock.advance(minutes=1)
    _admin(demo)
    day = demo.clock().date().isoformat()
    page = demo.client.get("/admin/vendors/statement",
                           params={"vendor": "Demo Vendor", "start": day, "end": day})
    drn, no = parse_pan(demo.meters[0]).drn, sold.json()["receipt"]["receipt_no"]
    assert f"<td>sale</td><td>receipt {no} meter {drn}</td>" in page.text
    assert demo.meters[0] not in page.text
    # the CSV gives the receipt and the meter their own columns too
    csv = demo.client.get("/admin/vendors/statement", params={
        "vendor": "Demo Vendor", "start": day, "end": day, "format": "csv"}).text
    assert csv.splitlines()[0].endswith(",receipt_no,meter") and f",{no},{drn}" in csv
    # and a French page says it in French
    operator_admin.set_language(demo.registry, "demo-admin", "fr")
    french = demo.client.get("/admin/vendors/statement",
                             params={"vendor": "Demo Vendor", "start": day, "end": day})
    assert f"<td>vente</td><td>reçu {no} compteur {drn}</td>" in french.text
