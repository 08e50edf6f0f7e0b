"""The main journeys in a real browser, on SQLite and PostgreSQL: a cashier sells and prints,
reprints; the meter on the screen accepts the token and then answers Used; a supervisor
reverses a sale; an administrator tops up a float, changes a tariff (the next sale follows it)
and reads the day's sales with their CSV."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from sts.vending.money_text import style
from tests.web.conftest import Site, shot, sign_in

ZA = style("en_ZA", "ZAR")  # how the demo utility writes money


def _find_meter(page: Any, site: Site, drn: str) -> None:
    page.goto(site.url + "/pos")
    page.get_by_label("Meter number").fill(drn)
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def _sell(page: Any, site: Site, drn: str, amount: str) -> str:
    _find_meter(page, site, drn)
    page.get_by_role("textbox", name="Amount").fill(amount)
    page.keyboard.press("Enter")
    page.wait_for_selector("#breakdown")
    page.locator("#sell").click()
    page.wait_for_url(re.compile(r"/pos/sale/"))
    return str(page.url)


def test_cashier_sells_prints_reprints_and_the_meter_takes_the_token(site: Site,
                                                                      new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "vendor")
    assert page.url.endswith("/pos")
    shot(page, "pos-empty", site)

    # a mistyped meter number: the error is next to the field, in plain words
    drn = site.drn(0)
    wrong = drn[:-1] + str((int(drn[-1]) + 1) % 10)
    _find_meter(page, site, wrong)
    assert "please re-read the meter number" in page.locator("#meter-error").inner_text()
    shot(page, "pos-wrong-number", site)

    # meter -> customer -> amount -> breakdown
    _find_meter(page, site, drn)
    assert "Demo Customer 1" in page.locator("#customer").inner_text()
    page.get_by_role("textbox", name="Amount").fill("100")
    page.keyboard.press("Enter")
    page.wait_for_selector("#breakdown")
    assert page.locator("#total").inner_text() == "R\u00a0100,00"  # the demo utility: en_ZA
    float_before = ZA.parse(page.locator("#float").inner_text())
    takings_before = ZA.parse(page.locator("#takings").inner_text())
    shot(page, "pos-trial", site)

    # Sell, double-clicked: one sale only
    page.locator("#sell").dblclick()
    page.wait_for_url(re.compile(r"/pos/sale/"))
    tokens = page.locator("[data-token]").evaluate_all("els => els.map(e => e.dataset.token)")
    assert len(tokens) == 1 and re.fullmatch(r"\d{20}", tokens[0])
    assert re.fullmatch(r"(\d{4} ){4}\d{4}", page.locator("[data-token]").first.inner_text())
    assert "Enter the token" in page.locator("#instructions").inner_text()
    assert ZA.parse(page.locator("#takings").inner_text()) == takings_before + 100
    assert ZA.parse(page.locator("#float").inner_text()) == float_before - 100
    shot(page, "sale", site)

    # the printed slip: only the slip, for the paper chosen
    page.select_option("#paper", "58")
    page.emulate_media(media="print")
    assert page.locator(".topbar").is_hidden() and page.locator("#slip").is_visible()
    assert tokens[0][:4] in page.locator("#slip").inner_text()
    shot(page, "slip-58mm-print", site)
    page.emulate_media(media="screen")

    # reprint of the meter's last sale
    page.goto(site.url + "/pos")
    page.get_by_label("Reprint the last sale of meter").fill(drn)
    page.get_by_role("button", name="Reprint").click()
    page.wait_for_selector("#slip")
    assert "REPRINT" in page.locator("#slip").inner_text()
    assert page.locator("[data-token]").first.get_attribute("data-token") == tokens[0]

    # the meter on the screen: type the token on the keypad, then again -> Used
    page.goto(site.url + f"/simulator?meter={drn}")
    lcd = page.locator("#lcd-text")
    for digit in tokens[0][:6]:
        page.locator(f"[data-key='{digit}']").click()
    expect(page.locator("#lcd-count")).to_have_text("6")
    assert lcd.inner_text() == f"{tokens[0][:4]}-{tokens[0][4:6]}"
    page.keyboard.type(tokens[0][6:])  # the rest from the keyboard
    expect(page.locator("#lcd-count")).to_have_text("20")
    shot(page, "simulator-typing", site)
    page.locator("[data-key='enter']").click()
    expect(page.locator("#result")).to_contain_text("accept")
    assert page.locator("#relay").inner_text() == "closed"
    shot(page, "simulator-accept", site)
    page.get_by_role("button", name="+20 s").click()
    expect(lcd).to_contain_text("kWh")
    for digit in tokens[0]:
        page.keyboard.press(digit)
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_contain_text("used")
    assert "Used" in page.locator("#result").inner_text()

    # the load makes the credit fall
    credit_before = float(page.locator("#credit").inner_text().split()[0])
    page.locator("#load").fill("5000")
    page.locator("#load").dispatch_event("change")
    expect(page.locator("#load-value")).to_have_text("5000 W")
    page.get_by_role("button", name="+1 hour").click()
    expect(page.locator("#offset")).not_to_have_text("+20 s")
    credit_after = float(page.locator("#credit").inner_text().split()[0])
    assert 5.0 <= credit_before - credit_after < 5.1  # 5 kW for an hour (and the seconds of the test)


def test_supervisor_reverses_and_admin_tops_up(site: Site, new_page: Any) -> None:
    cashier = new_page()
    sign_in(cashier, site, "vendor")
    _sell(cashier, site, site.drn(1), "50")

    sup = new_page()
    sign_in(sup, site, "supervisor")
    sup.goto(site.url + "/admin/reversals")
    sup.get_by_label("Meter number").fill(site.drn(1))
    sup.get_by_role("button", name="Find sales").click()
    sup.locator("#sales tbody a").first.click()  # the sale's own page holds the reversal
    sup.wait_for_url("**/sales/**")
    assert site.drn(1) in sup.locator("#sale").inner_text()
    sup.get_by_label("Reason").fill("customer never received the token")
    sup.get_by_role("button", name="Reverse").click()
    sup.wait_for_selector("#notice")
    assert "reversed" in sup.locator("#notice").inner_text()
    assert sup.locator("#sale-status").inner_text() == "reversed"
    assert sup.locator("#reverse").count() == 0  # once reversed, no form
    shot(sup, "reversal", site)
    # a reprint of a reversed sale says so
    cashier.goto(site.url + "/pos")
    cashier.get_by_label("Reprint the last sale of meter").fill(site.drn(1))
    cashier.get_by_role("button", name="Reprint").click()
    assert "reversed" in cashier.locator(".alert").first.inner_text()

    admin = new_page()
    sign_in(admin, site, "admin")
    assert admin.url.endswith("/admin")
    admin.goto(site.url + "/admin/vendors")
    before = admin.locator("[data-float='Demo Vendor']").inner_text()
    admin.get_by_label("Amount").fill("2500")
    admin.get_by_label("Payment reference").fill("EFT 778812")
    admin.get_by_role("button", name="Top up").click()
    admin.wait_for_selector("#notice")
    after = admin.locator("[data-float='Demo Vendor']").inner_text()
    assert ZA.parse(after) - ZA.parse(before) == 2500
    shot(admin, "vendors", site)
    admin.get_by_role("link", name="Statement").first.click()
    text = admin.locator("#statement").inner_text()
    assert "EFT 778812" in text and "reversal" in text and "sale" in text
    assert admin.locator("#closing").inner_text() == after
    shot(admin, "statement", site)


def test_tariff_change_reaches_the_next_sale_and_the_report(site: Site, new_page: Any) -> None:
    admin = new_page()
    sign_in(admin, site, "admin")
    admin.goto(site.url + "/admin/tariffs")
    form = admin.locator("#tariff-1")
    # the prices as rows: the first row gets a limit, "Add a row" gives the open last row
    form.get_by_label("Row 1: up to how many units").fill("50")
    form.get_by_label("Row 1: price per unit").fill("2.00")
    form.get_by_role("button", name="Add a row").click()
    expect(form.locator("fieldset.price-rows tbody tr")).to_have_count(2)
    form.get_by_label("Row 2: price per unit").fill("5.00")
    form.get_by_role("button", name="Save Flat").click()
    admin.wait_for_selector("#notice")
    form = admin.locator("#tariff-1")
    assert form.get_by_label("Row 2: price per unit").input_value() == "5"
    # the history keeps both versions, the new one in force
    form.locator("details.history summary").click()
    history = form.locator("details.history tbody tr")
    assert history.count() == 2 and "in force" in history.first.inner_text()
    shot(admin, "tariffs", site)

    cashier = new_page()
    sign_in(cashier, site, "vendor")
    _find_meter(cashier, site, site.drn(2))
    cashier.get_by_role("textbox", name="Amount").fill("230")
    cashier.keyboard.press("Enter")
    cashier.wait_for_selector("#breakdown")
    # 200.00 excl. VAT: 50 units at 2.00 = 100, then 20 units at 5.00
    assert "Energy 70,0 kWh" in cashier.locator("#breakdown").inner_text()
    cashier.locator("#sell").click()
    cashier.wait_for_url(re.compile(r"/pos/sale/"))

    admin.goto(site.url + "/reports?by=vendor")
    assert admin.locator("#sales").get_by_text("Demo Vendor").count() == 1
    total = admin.locator("#total-amount").inner_text()
    assert ZA.parse(total) >= 230
    assert "Intact" in admin.locator("#audit-ok").inner_text()
    shot(admin, "reports", site)
    with admin.expect_download() as dl:
        admin.locator("#sales-csv").click()
    csv_text = Path(dl.value.path()).read_text(encoding="utf-8")
    lines = csv_text.strip().splitlines()
    assert lines[0] == "key,sales,reversals,amount (ZAR),vat (ZAR),units,charges (ZAR),debt (ZAR)"
    assert lines[-1].startswith("Total,") and f"{ZA.parse(total)}" in lines[-1]


def test_engineer_test_tokens_in_both_forms_and_a_clear_tamper(site: Site,
                                                               new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "engineer")
    assert page.url.endswith("/engineering")
    page.goto(site.url + f"/pos/tests?meter={site.drn(4)}")
    row = page.locator("#test-tokens tr", has_text="Display (LCD) test")
    two = row.locator("td").nth(2).inner_text().replace(" ", "")
    four = row.locator("td").nth(3).inner_text().replace(" ", "")
    assert re.fullmatch(r"\d{20}", two) and re.fullmatch(r"\d{20}", four) and two != four
    assert "2-digit form" in page.locator("main h2").inner_text()  # the demo meters' MfrCode
    shot(page, "test-tokens", site)

    # the meter takes its own form and shows what the page said; the other form is refused
    page.goto(site.url + f"/simulator?meter={site.drn(4)}")
    page.keyboard.type(two)
    expect(page.locator("#lcd-count")).to_have_text("20")
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_contain_text("accept")
    page.get_by_role("button", name="+20 s").click()
    page.keyboard.type(four)
    expect(page.locator("#lcd-count")).to_have_text("20")
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_contain_text("Err-14")

    # a management token, with its work order
    page.goto(site.url + "/engineering")
    page.get_by_role("textbox", name="Meter number").fill(site.drn(4))
    page.get_by_label("Token").select_option("clear_tamper")
    page.get_by_label("Work order or reason").fill("WO-2231 cover replaced")
    page.get_by_role("button", name="Issue token").click()
    expect(page.locator("#issued")).to_contain_text("CLEAR TAMPER")
    shot(page, "engineering", site)
