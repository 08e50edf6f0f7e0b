"""Sign-in, lockout, sign-out, role refusals, CSRF refusal and the audit trail of admin
actions, in a real browser on SQLite and PostgreSQL; the layout at tablet width and 200 %
zoom."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from playwright.sync_api import expect

from sts.codec.pan import luhn_check_digit
from tests.web.conftest import Site, shot, sign_in


def _audit(site: Site, action: str) -> list[Any]:
    from sts.vending.storage.database import Database
    from sts.vending.storage.tables import audit_log

    db = Database(site.db_url)
    try:
        with db.read() as conn:
            return list(conn.execute(sa.select(audit_log.c.actor, audit_log.c.subject,
                                               audit_log.c.details)
                                     .where(audit_log.c.action == action)))
    finally:
        db.dispose()


def test_lockout_after_wrong_passwords_and_sign_out(site: Site, new_page: Any) -> None:
    page = new_page()
    page.goto(site.url + "/pos")
    assert "/login" in page.url  # not signed in: sent to sign in, then back
    shot(page, "login", site)
    user = site.operators["lockme"]["username"]
    for _ in range(5):
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#login-error")
    assert "locked" in page.locator("#login-error").inner_text()
    # the right password does not help while the account is locked
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(site.password("lockme"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("locked")
    shot(page, "login-locked", site)
    assert len(_audit(site, "login.failed")) >= 5

    # a good sign-in: cookie flags, the page asked for, then sign-out ends the session
    page = new_page()
    sign_in(page, site, "vendor", next_path="/pos/tests")
    assert page.url.endswith("/pos/tests")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sts_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto(site.url + "/pos")
    assert "/login" in page.url


def test_roles_are_refused_on_the_server(site: Site, new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "vendor")
    assert page.get_by_role("link", name="Back office").count() == 0
    for path in ("/admin", "/admin/vendors", "/reports", "/engineering", "/admin/reversals"):
        resp = page.goto(site.url + path)
        assert resp is not None and resp.status == 403, path
        assert "may not open this page" in page.locator("main").inner_text()
    shot(page, "forbidden", site)
    auditor = new_page()
    sign_in(auditor, site, "auditor")
    assert auditor.url.endswith("/reports")
    resp = auditor.goto(site.url + "/pos")
    assert resp is not None and resp.status == 403
    resp = auditor.goto(site.url + "/admin/operators")
    assert resp is not None and resp.status == 403


def test_forged_form_is_refused_and_admin_actions_are_audited(site: Site,
                                                              new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "admin")
    page.goto(site.url + "/admin/vendors")
    before = page.locator("[data-float='Demo Vendor']").inner_text()
    form = page.locator("form[action='/admin/vendors/top-up']")
    form.locator("input[name=csrf]").evaluate("el => { el.value = 'forged-token'; }")
    page.get_by_label("Amount").fill("999")
    page.get_by_label("Payment reference").fill("forged")
    page.get_by_role("button", name="Top up").click()
    expect(page.locator("main")).to_contain_text("did not come from this site")
    page.goto(site.url + "/admin/vendors")
    assert page.locator("[data-float='Demo Vendor']").inner_text() == before

    # an administrator's real change is audited under their name
    page.goto(site.url + "/admin/customers")
    page.get_by_label("Account number").fill("WEB-0001")
    page.get_by_label("Name", exact=True).fill("Thandi Nkosi")
    page.get_by_label("Address", exact=True).fill("12 Jacaranda Ave")
    page.get_by_role("button", name="Add customer").click()
    expect(page.locator("#notice")).to_contain_text("Customer added")
    rows = _audit(site, "customer.add")
    assert any(r.actor == "web:demo-admin" and r.subject == "WEB-0001" for r in rows)

    # and a new meter is registered for that customer from the number printed on it
    page.goto(site.url + "/admin/meters")
    body = "0430000077"
    drn = body + str(luhn_check_digit(body))
    page.get_by_role("textbox", name="Meter number").fill(drn)
    page.get_by_label("Customer account").fill("WEB-0001")
    page.get_by_role("button", name="Register meter").click()
    expect(page.locator("#notice")).to_contain_text("Meter registered")
    printed = " ".join(drn[i:i + 4] for i in range(0, len(drn), 4))
    expect(page.locator("#meter-number")).to_have_text(printed)  # the meter's own page
    page.goto(site.url + "/admin/meters")
    page.get_by_role("searchbox", name="Search").fill("Thandi")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#meters tbody")).to_contain_text(printed)
    shot(page, "meters", site)


def test_layout_at_tablet_width_and_200_percent_zoom(site: Site, new_page: Any) -> None:
    for name, kw in (("tablet", {"viewport": {"width": 768, "height": 1024}}),
                     ("zoom200", {"viewport": {"width": 640, "height": 450},
                                  "device_scale_factor": 2})):
        page = new_page(**kw)
        sign_in(page, site, "vendor")
        page.get_by_label("Meter number").fill(site.drn(3))
        page.keyboard.press("Enter")
        page.get_by_role("textbox", name="Amount").fill("20")
        page.keyboard.press("Enter")
        page.wait_for_selector("#breakdown")
        overflow = page.evaluate("() => document.documentElement.scrollWidth"
                                 " - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
        assert page.locator("#sell").is_visible()
        shot(page, f"pos-{name}", site)
