"""The counter at speed, in Chromium: a scanner's digits typed the instant the page has loaded
all arrive, presets sell in one press, Print has the focus after a sale and P / N work (but
not while typing), refusals stand by their field in the cashier's words, and a shift is
opened, sold in, closed and cashed up, then seen by the supervisor tied to the vendor."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.web import counter_text
from tests.web.conftest import Site, shot, sign_in

# meters of the demo set no other browser test sells to
SCANNED, BLOCKED = 6, 7


def _text(locator: Any) -> str:
    """A locator's text with the no-break spaces of money as plain spaces ("R 250,00")."""
    return str(locator.inner_text()).replace("\u00a0", " ").replace("\u202f", " ")


def _has_focus(page: Any, field: str) -> None:
    """The field holds the keyboard's focus (the browser applies autofocus while it paints:
    polled until Playwright's deadline, never read at once)."""
    expect(page.locator(f"#{field}")).to_be_focused()


def _engine(site: Site) -> sa.Engine:
    url = site.db_url if "://" in site.db_url else f"sqlite:///{site.db_url}"
    return sa.create_engine(url)


@pytest.mark.slow
def test_a_scanned_sale_by_keyboard_with_presets_and_shortcuts(site: Site,
                                                               new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "vendor")
    drn = site.drn(SCANNED)
    # a scanner types the instant the page is there: no digit may be lost
    page.goto(site.url + "/pos")
    page.keyboard.type(drn)
    # the field is focused by the HTML itself (autofocus), on first paint
    assert page.locator("#meter[autofocus]").count() == 1
    assert page.locator("#meter").input_value() == drn
    page.keyboard.press("Enter")
    page.wait_for_selector("#amount")
    _has_focus(page, "amount")
    presets = page.locator(".preset")
    assert presets.count() >= 2
    shot(page, "counter-presets", site)
    presets.nth(1).click()  # the second preset (50.00 by default)
    page.wait_for_selector("#breakdown")
    total = page.locator("#total").inner_text()
    assert total == page.locator(".preset").nth(1).inner_text()
    _has_focus(page, "sell")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/pos/sale/"))
    # after the sale Print has the focus; the shortcuts are written on the buttons
    _has_focus(page, "print")
    assert "P" in page.locator("#print").inner_text()
    assert "N" in page.locator("#next-sale").inner_text()
    shot(page, "counter-sold", site)
    # a key pressed in a field is typing, not a shortcut
    page.locator("#paper").focus()
    page.keyboard.press("n")
    assert "/pos/sale/" in page.url
    page.locator("#print").focus()
    page.keyboard.press("n")
    page.wait_for_url(site.url + "/pos")
    _has_focus(page, "meter")


@pytest.mark.slow
def test_refusals_in_the_cashiers_words_by_their_field(site: Site, new_page: Any) -> None:
    drn = site.drn(BLOCKED)
    with _engine(site).begin() as conn:  # the back office blocked it with an internal note
        conn.execute(sa.text("UPDATE meters SET status = 'blocked', status_reason = "
                             "'Tampered - bypass found on inspection' WHERE pan = :pan"),
                     {"pan": site.meters[BLOCKED]})
    page = new_page()
    sign_in(page, site, "vendor")
    for query in (f"meter={drn}", f"meter={drn}&amount=50"):
        page.goto(site.url + f"/pos?{query}")
        text = page.locator("main").inner_text()
        assert "refer the customer to the utility office" in text
        assert "Tampered" not in text
    shot(page, "counter-blocked", site)

    # a number with a right check digit that is not registered: said as the cashier typed it
    body = "0999999999"
    unknown = body + str(luhn_check_digit(body))
    page.goto(site.url + f"/pos?meter={unknown}")
    message = page.locator("#meter-error").inner_text()
    assert unknown in message and MeterPan.from_drn(unknown).pan not in message

    # the reprint's error stands by the reprint field, not under the sale's meter field
    page.goto(site.url + "/pos")
    page.locator("#reprint-receipt").fill("9999999999")
    page.get_by_role("button", name="Reprint").click()
    page.wait_for_selector("#reprint-receipt-error")
    assert page.locator("#meter-error").count() == 0
    assert page.locator("#reprint-receipt").get_attribute("aria-invalid") == "true"
    shot(page, "counter-reprint-error", site)


@pytest.mark.slow
def test_a_shift_is_opened_sold_in_closed_and_tied(site: Site, new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "vendor")
    page.goto(site.url + "/pos/shift")
    if page.locator("#counted-cash").count():  # a shift earlier tests' sales opened
        page.locator("#counted-cash").fill(page.locator("#cu-expected").inner_text())
        page.locator("#close").click()
        page.wait_for_url(re.compile(r"/shifts/\d+$"))
        page.goto(site.url + "/pos/shift")
    page.locator("#opening-cash").fill("200.00")
    page.locator("#open-shift").click()
    page.wait_for_url(site.url + "/pos")
    assert "cash expected in the drawer R 200,00" in _text(page.locator("#shift-state"))

    drn = site.drn(SCANNED)
    for tender, amount in (("cash", "50"), ("card", "20")):
        page.goto(site.url + f"/pos?meter={drn}&amount={amount}")
        page.locator(f"input[name=tender][value={tender}]").check()
        page.locator("#sell").click()
        page.wait_for_url(re.compile(r"/pos/sale/"))
    assert "cash expected in the drawer R 250,00" in _text(page.locator("#shift-state"))

    page.locator("#close-shift").click()
    page.wait_for_url(site.url + "/pos/shift")
    page.locator("#counted-cash").fill("abc")
    page.locator("#close").click()
    page.wait_for_selector("#counted-cash-error")  # refused by the field; the shift stays open
    page.locator("#counted-cash").fill("245,00")  # the utility's way (en_ZA)
    page.locator("#note").fill("a 5.00 note missing")
    page.locator("#close").click()
    page.wait_for_url(re.compile(r"/shifts/\d+$"))
    shift_url = page.url
    _has_focus(page, "print")
    assert _text(page.locator("#cu-amount")) == "R 70,00"
    assert _text(page.locator("#cu-expected")) == "R 250,00"
    assert _text(page.locator("#cu-counted")) == "R 245,00"
    assert _text(page.locator("#cu-difference")) == "R -5,00"
    tenders = page.locator("#by-tender").inner_text()
    assert "Cash" in tenders and "Card" in tenders
    shot(page, "shift-cash-up", site)

    sup = new_page()
    sign_in(sup, site, "supervisor")
    sup.get_by_role("link", name="Shifts").click()
    sup.wait_for_url(site.url + "/shifts")
    assert "R -5,00" in _text(sup.locator("#shifts"))
    ties = [row.replace("\u00a0", " ") for row in sup.locator("#ties tbody tr").all_inner_texts()]
    assert ties and all(row.rstrip().endswith("R 0,00") and "-" not in row.split()[-1]
                        for row in ties)
    shot(sup, "shifts-supervisor", site)
    sup.goto(shift_url)
    assert _text(sup.locator("#cu-difference")) == "R -5,00"


def test_delivery_states_in_the_cashiers_words() -> None:
    down = "no ami carrier runs in this dispatcher (for ami: --ami-broker / STS_AMI_BROKER)"
    said = counter_text.delivery("pending", "ami", down, None)
    assert said == "AMI delivery is not available here; give the customer the printed token"
    assert "STS_AMI_BROKER" not in counter_text.delivery("failed", "sms", down, None)
    assert counter_text.delivery("accepted", "ami", None, "1234.5") == \
        "The meter took the token (the meter shows 1234.5)"
    assert counter_text.delivery("failed", "sms", "HTTP 500 from gateway x", None) == \
        counter_text.DELIVERY["failed"]
