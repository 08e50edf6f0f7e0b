"""Browser tests of the back office's money rules and the training pages (issue 20, points 9-11):
four-eyes float top-ups, a tariff added as price rows and changed from a later time, the
simulator's keypad per signed-in user, and /docs with no network beyond the server."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Site, shot, sign_in


def _float(page: Any) -> float:
    """The vendor's float as the page writes it in the utility's way (`R 1 000,00`)."""
    text = re.sub(r"[^\d,.]", "", page.locator("[data-float='Demo Vendor']").inner_text())
    return float(text.replace(",", "") if "." in text else text.replace(",", "."))


def test_a_large_top_up_needs_a_second_administrator(site: Site, new_page: Any) -> None:
    clerk = new_page()
    sign_in(clerk, site, "admin")
    clerk.goto(site.url + "/admin/vendors")
    before = _float(clerk)
    for amount, ref in (("25000", "EFT 25K"), ("30000", "EFT 30K")):
        clerk.get_by_label("Amount").fill(amount)
        clerk.get_by_label("Payment reference").fill(ref)
        clerk.get_by_role("button", name="Top up").click()
        expect(clerk.locator("#notice")).to_contain_text("waits for another administrator")
    assert _float(clerk) == before  # nothing moved
    mine = clerk.locator("#pending-top-ups tbody tr", has_text="EFT 25K")
    expect(mine).to_contain_text("Waiting for another administrator")
    assert mine.get_by_role("button", name=re.compile("Approve")).count() == 0
    shot(clerk, "top-up-pending", site)

    boss = new_page()
    sign_in(boss, site, "approver")
    boss.goto(site.url + "/admin/vendors")
    row = boss.locator("#pending-top-ups tbody tr", has_text="EFT 25K")
    row.get_by_role("button", name=re.compile("Approve")).click()
    expect(boss.locator("#notice")).to_contain_text("approved")
    assert _float(boss) == before + 25000
    row = boss.locator("#pending-top-ups tbody tr", has_text="EFT 30K")
    row.get_by_role("button", name="Reject").click()  # no reason: the browser asks for one
    assert "top-up/reject" not in boss.url and _float(boss) == before + 25000
    row.get_by_label("Reason to reject").fill("no such deposit on the bank statement")
    row.get_by_role("button", name="Reject").click()
    expect(boss.locator("#notice")).to_contain_text("rejected")
    assert _float(boss) == before + 25000
    boss.locator("#top-up-requests details summary").click()
    expect(boss.locator("#top-up-requests details")).to_contain_text("no such deposit")
    shot(boss, "top-up-decided", site)


def test_a_tariff_as_rows_and_a_change_from_a_later_time(site: Site, new_page: Any) -> None:
    admin = new_page()
    sign_in(admin, site, "admin")
    admin.goto(site.url + "/admin/tariffs")
    new = admin.locator("#tariff-form-new")
    new.get_by_label("Name").fill("Lifeline")
    new.get_by_label("Row 1: up to how many units").fill("50")
    new.get_by_label("Row 1: price per unit").fill("1.20")
    for rows in (2, 3):  # each click swaps the form (htmx): wait for it before the next
        new.get_by_role("button", name="Add a row").click()
        expect(new.locator("tbody tr")).to_have_count(rows)
    new.get_by_label("Row 2: up to how many units").fill("350")
    new.get_by_label("Row 2: price per unit").fill("2.10")
    new.get_by_label("Row 3: price per unit").fill("3.40")
    new.get_by_role("button", name="Add a row").click()
    expect(new.locator("tbody tr")).to_have_count(4)
    new.get_by_role("button", name="Remove row 4").click()  # an empty row, taken away
    expect(new.locator("tbody tr")).to_have_count(3)
    assert new.get_by_label("Row 2: up to how many units").input_value() == "350"
    new.get_by_role("button", name="Add tariff").click()
    expect(admin.locator("#notice")).to_contain_text("Tariff added")
    card = admin.locator("section.card", has_text="Lifeline").first
    assert card.get_by_label("Row 3: price per unit").input_value() == "3.4"
    # a change from a later time: kept as a scheduled version, the current one stays
    card.get_by_label("Row 3: price per unit").fill("3.90")
    card.get_by_label("Takes effect").fill("2099-01-01T00:00")
    card.get_by_role("button", name="Save Lifeline").click()
    expect(admin.locator("#notice")).to_contain_text("from the time it takes effect")
    card = admin.locator("section.card", has_text="Lifeline").first
    assert card.get_by_label("Row 3: price per unit").input_value() == "3.4"
    card.locator("details.history summary").click()
    rows = card.locator("details.history tbody tr")
    expect(rows).to_have_count(2)
    assert "scheduled" in rows.nth(0).inner_text() and "2099-01-01 00:00" in \
        rows.nth(0).inner_text()
    assert "in force" in rows.nth(1).inner_text()
    # a time before now is refused, naming the field
    card.get_by_label("Takes effect").fill("2001-01-01T00:00")
    card.get_by_role("button", name="Save Lifeline").click()
    expect(admin.locator("#error")).to_contain_text("must not be before now")
    shot(admin, "tariff-history", site)


def test_each_trainee_has_their_own_keypad(site: Site, new_page: Any) -> None:
    meter = site.drn(7)
    one = new_page(viewport={"width": 390, "height": 900})
    sign_in(one, site, "trainee")
    two = new_page()
    sign_in(two, site, "engineer")
    for page in (one, two):
        page.goto(f"{site.url}/simulator?meter={meter}")
    lcd_one = one.locator("#lcd-text")
    one.locator("#sim").click(position={"x": 1, "y": 1})
    one.keyboard.type("12345678901234567890")
    expect(lcd_one).to_have_text("1234-5678-9012-3456-7890")
    # the whole token is on the screen at a phone's width: nothing clipped or scrolled away
    fits = one.evaluate("""() => {
        const t = document.getElementById('lcd-text'), lcd = document.getElementById('lcd');
        const a = t.getBoundingClientRect(), b = lcd.getBoundingClientRect();
        return a.left >= b.left && a.right <= b.right && t.scrollWidth <= t.clientWidth + 1;
    }""")
    assert fits
    expect(one.locator("#lcd-meaning")).to_contain_text("Digits being typed")
    shot(one, "simulator-typing-phone", site)
    # the other trainee's meter never saw those digits
    two.goto(f"{site.url}/simulator?meter={meter}")
    assert "1234" not in two.locator("#lcd-text").inner_text()
    assert two.locator("#lcd-count").inner_text().strip() == ""
    # a wrong token: Reject-1, explained on the screen and in the legend
    one.keyboard.press("Enter")
    expect(lcd_one).to_have_text("Reject-1")
    expect(one.locator("#lcd-meaning")).to_contain_text("failed its check")
    expect(one.locator("#codes")).to_contain_text("Reject-1")
    two.goto(f"{site.url}/simulator?meter={meter}")
    assert "Reject" not in two.locator("#lcd-text").inner_text()


def test_docs_work_without_internet(site: Site, new_page: Any) -> None:
    page = new_page()
    outside: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_the_server)
    page.goto(site.url + "/docs")
    ops = page.locator(".opblock")
    # the first /openapi.json is built on demand (seconds on a loaded machine): a deadline
    expect(ops.first).to_be_visible(timeout=60_000)
    assert ops.count() > 10
    expect(page.locator("body")).to_contain_text("/v1/purchases/{purchase_id}")
    assert outside == []
    licence = page.request.get(site.url + "/docs/assets/LICENSE")
    assert licence.ok and "Apache License" in licence.text()
    shot(page, "docs-offline", site)
