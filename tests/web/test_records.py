"""The meter page and the audit log viewer in a real browser (SQLite and PostgreSQL): an
administrator finds a meter by the number as printed, opens its page, blocks it there and
sees the block in its history; a cashier's view of the same page hides the internal note;
an auditor filters the audit log to that meter, follows the entry back to the meter, and
downloads the entries as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Site, shot, sign_in


def _printed(drn: str) -> str:
    return " ".join(drn[i:i + 4] for i in range(0, len(drn), 4))


def test_meter_page_from_search_block_there_and_role_views(site: Site, new_page: Any) -> None:
    drn = site.drn(6)
    page = new_page()
    sign_in(page, site, "admin")
    page.goto(site.url + "/admin/meters")
    expect(page.locator("#meters-count")).to_contain_text("of ")
    page.get_by_role("searchbox", name="Search").fill(_printed(drn))
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#meters-count")).to_have_text("1–1 of 1 meters")
    page.get_by_role("link", name=_printed(drn)).click()
    page.wait_for_url(f"**/meters/{drn}")
    expect(page.locator("#meter-number")).to_have_text(_printed(drn))
    expect(page.locator("#identity")).to_contain_text(site.meters[6])
    expect(page.locator("#key")).to_contain_text("999910 / 1 / 01")
    expect(page.locator("#simulator-link")).to_be_visible()
    page.get_by_label("Reason for blocking").fill("Seal broken on inspection")
    page.get_by_role("button", name="Block").click()
    expect(page.locator("#notice")).to_contain_text("Meter blocked")
    expect(page.locator("#block-history")).to_contain_text("Seal broken on inspection")
    ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), ids
    shot(page, "meter-page", site)

    cashier = new_page()
    sign_in(cashier, site, "vendor")
    cashier.goto(site.url + f"/meters/{drn}")
    expect(cashier.locator("#status")).to_contain_text("blocked")
    expect(cashier.locator("main")).not_to_contain_text("Seal broken")
    assert cashier.locator("#changes").count() == 0
    expect(cashier.locator("#sell-link")).to_be_visible()

    phone = new_page(viewport={"width": 390, "height": 844})
    sign_in(phone, site, "admin")
    phone.goto(site.url + f"/meters/{drn}")
    overflow = phone.evaluate("() => document.documentElement.scrollWidth"
                              " - document.documentElement.clientWidth")
    assert overflow <= 0, f"the meter page scrolls sideways by {overflow}px at 390 px"
    shot(phone, "meter-page-phone", site)


def test_auditor_filters_the_log_follows_a_record_and_downloads_csv(site: Site,
                                                                  new_page: Any) -> None:
    drn = site.drn(5)  # no other test of the shared site touches meter 5 (counter blocks 7)
    admin = new_page()
    sign_in(admin, site, "admin")
    admin.goto(site.url + f"/meters/{drn}")
    admin.get_by_label("Reason for blocking").fill("Audit viewer test")
    admin.get_by_role("button", name="Block").click()
    expect(admin.locator("#notice")).to_contain_text("Meter blocked")

    page = new_page()
    sign_in(page, site, "auditor")
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/audit")
    expect(page.locator("#audit-count")).to_contain_text("1–")
    page.get_by_label("Record").fill(_printed(drn))
    page.get_by_label("Action").fill("meter.blocked")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-count")).to_have_text("1–1 of 1 entries")
    row = page.locator("#audit-entries tbody tr")
    expect(row).to_contain_text("web:demo-admin")
    expect(row).to_contain_text("checks out")
    shot(page, "audit-log", site)
    with page.expect_download() as got:
        page.get_by_role("link", name="Download CSV").click()
    text = got.value.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["action"], r["subject"], r["checks_out"]) for r in rows] == [
        ("meter.blocked", site.meters[5], "True")]
    page.get_by_role("link", name=_printed(drn)).click()
    page.wait_for_url(f"**/meters/{drn}")
    expect(page.locator("#block-history")).to_contain_text("Audit viewer test")
