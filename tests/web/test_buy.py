"""The self-service page in a phone-sized Chromium (390x844), against a real `sts serve`
(SQLite and PostgreSQL), the Daraja sandbox stand-in (its STK callback comes after a delay)
and the sandbox SMS gateway: meter number with spaces -> masked customer -> quote -> phone ->
pay -> the token appears (polling) and arrives by SMS; then "my tokens" with a one-time code
sent to the number on record (a wrong code first).  Errors appear next to their field."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from sts.payments.sandbox.daraja import Daraja
from sts.payments.sandbox.sms import SmsInbox
from tests.fixtures import pg_worker_url
from tests.support.server import Server
from tests.support.waiting import wait_for
from tests.web.conftest import Site, _demo, _drop, shot

PHONE = "254722000111"
ON_RECORD = "+254711000001"  # the first demo customer's number
PHONE_SIZE = {"width": 390, "height": 844}


@dataclass
class BuySite:
    site: Site
    daraja: Daraja
    sms: SmsInbox


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                                marks=pytest.mark.postgres)])
def buy_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             worker_id: str) -> Iterator[BuySite]:
    from sts.vending.storage.tables import customers

    tmp = tmp_path_factory.mktemp("buy")
    kek = tmp / "kek.hex"
    kek.write_text(os.urandom(32).hex())
    kek.chmod(0o600)
    sqlite = request.param == "sqlite"
    url = str(tmp / "buy.sqlite3") if sqlite else pg_worker_url(f"{worker_id}buy")
    info = _demo(url, str(kek))
    _channel(url, str(kek))
    eng = sa.create_engine(url if not sqlite else f"sqlite:///{url}")
    with eng.begin() as conn:
        conn.execute(sa.update(customers).where(customers.c.account_no == "ACC0001")
                     .values(phone=ON_RECORD))
    eng.dispose()
    daraja = Daraja(consumer_key="ck-web", consumer_secret="cs-web", passkey="pk-web",
                    shortcode="600000", delay=1.5).start()
    sms = SmsInbox().start()
    server = Server(url, str(kek), log=tmp / "server.log", extra_env={
        "STS_MPESA_API": daraja.url, "STS_MPESA_CONSUMER_KEY": "ck-web",
        "STS_MPESA_CONSUMER_SECRET": "cs-web", "STS_MPESA_PASSKEY": "pk-web",
        "STS_MPESA_SHORTCODE": "600000", "STS_SMS_URL": sms.url})
    server.extra_env["STS_MPESA_CALLBACK_BASE"] = server.url
    server.start(timeout=60)
    try:
        yield BuySite(Site(server.url, request.param, info["operators"], info["meters"],
                           server, url), daraja, sms)
    finally:
        server.stop()
        daraja.stop()
        sms.stop()
        if not sqlite:
            _drop(url)


def _channel(url: str, kek: str) -> None:
    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, add_demo_channel

    svc = open_service(Settings(db_url=url, kek_file=kek))
    try:
        add_demo_channel(Registry(svc.db, svc.sm, actor="tests"))
    finally:
        svc.db.dispose()


def _spaced(drn: str) -> str:
    return f"{drn[:4]} {drn[4:8]} {drn[8:]}"


def test_a_customer_buys_from_a_phone_and_reads_their_tokens(buy_site: BuySite,
                                                              new_page: Any) -> None:
    site = buy_site.site
    page = new_page(viewport=PHONE_SIZE, is_mobile=True, has_touch=True)
    drn = site.drn(0)

    # a mistyped meter number: a plain error next to the field, nothing else happens
    page.goto(site.url + "/buy")
    wrong = drn[:-1] + str((int(drn[-1]) + 1) % 10)
    page.get_by_label("Meter number").fill(_spaced(wrong))
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#meter-error")).to_contain_text("Check the number printed")
    assert page.locator("#meter").get_attribute("aria-invalid") == "true"
    shot(page, "buy-wrong-number", site)

    # meter (as printed, with spaces) -> the customer masked
    page.get_by_label("Meter number").fill(_spaced(drn))
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("customer")).to_have_text("D*** C*** 1***")
    assert "Demo Customer" not in page.content()

    # an amount out of range, then a good one -> what it buys
    page.get_by_label("Amount").fill("1")
    page.get_by_role("button", name="See what it buys").click()
    expect(page.locator("#amount-error")).to_be_visible()
    page.get_by_label("Amount").fill("100")
    page.get_by_role("button", name="See what it buys").click()
    expect(page.get_by_test_id("quote")).to_contain_text(re.compile(r"100[.,]00 buys about \S+ kWh"))
    shot(page, "buy-quote", site)

    # a phone number that is not one, then the payer's -> the prompt, then the token
    page.get_by_label("M-Pesa phone number").fill("0712")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    expect(page.locator("#phone-error")).to_contain_text("country code")
    page.get_by_label("M-Pesa phone number").fill(PHONE)
    page.get_by_role("button", name=re.compile("^Pay")).click()
    page.wait_for_url(re.compile(r"/buy/wait/"))
    expect(page.get_by_test_id("state")).to_contain_text("M-Pesa PIN")
    shot(page, "buy-waiting", site)
    tokens = page.get_by_test_id("tokens")
    expect(tokens).to_be_visible(timeout=30_000)  # the callback comes after a delay
    token = tokens.locator(".token").last.inner_text()
    assert re.fullmatch(r"\d{4}( \d{4}){4}", token)
    assert len(buy_site.daraja.prompts) == 1
    assert buy_site.daraja.prompts[0].body["PhoneNumber"] == PHONE
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    shot(page, "buy-token", site)
    wait_for(lambda: any(token in text for text in buy_site.sms.to(PHONE)),
             30, "the token by SMS to the paying phone")

    # "my tokens": a code to the number on record; a wrong code, then the right one
    page.goto(site.url + "/buy/mine")
    page.get_by_label("Meter number").fill(_spaced(drn))
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_test_id("sent")).to_contain_text("+254")
    assert ON_RECORD not in page.content()  # the number itself is masked
    wait_for(lambda: bool(buy_site.sms.to(ON_RECORD)), 20, "the code by SMS")
    code = re.search(r"\b(\d{6})\b", buy_site.sms.to(ON_RECORD)[-1])
    assert code is not None
    wrong_code = f"{(int(code.group(1)) + 1) % 1_000_000:06d}"
    page.get_by_label("Code").fill(wrong_code)
    page.get_by_role("button", name="Show my tokens").click()
    expect(page.locator("#code-error")).to_contain_text("4 tries left")
    page.get_by_label("Code").fill(code.group(1))
    page.get_by_role("button", name="Show my tokens").click()
    expect(page.get_by_test_id("sale").first).to_contain_text(token)
    shot(page, "buy-my-tokens", site)

    # the code is used: a second try with it is refused
    again = page.request.post(site.url + "/buy/mine", form={"meter": drn, "code": code.group(1)})
    assert again.status == 422 and "ask for a new one" in again.text()


def test_pages_are_phone_sized_and_safe(buy_site: BuySite, new_page: Any) -> None:
    """No sideways scrolling on a phone; the security headers; a ticket that is not one."""
    site = buy_site.site
    page = new_page(viewport=PHONE_SIZE, is_mobile=True)
    resp = page.goto(site.url + "/buy")
    assert resp is not None and resp.headers["x-frame-options"] == "DENY"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    resp = page.goto(site.url + "/buy/wait/" + "A" * 32)
    assert resp is not None and resp.status == 404
    expect(page.get_by_role("alert")).to_contain_text("cannot find this payment")
