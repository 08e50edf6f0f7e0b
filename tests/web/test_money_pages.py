"""Money as people write it and a second language, in a real browser: an amount that could be
read two ways is refused next to the field; one typed the utility's way sells; a supervisor who
chooses French gets French pages and a French slip."""

from __future__ import annotations

import re
from typing import Any

from tests.web.conftest import Site, shot, sign_in

NBSP = "\u00a0"


def _choose(page: Any, language: str) -> None:
    page.select_option("#language-pick", language)
    page.locator("#language-form button").click()
    page.wait_for_load_state()


def test_amounts_the_utilitys_way_and_a_french_slip(site: Site, new_page: Any) -> None:
    page = new_page()
    sign_in(page, site, "supervisor")
    page.goto(site.url + "/pos")
    try:
        _choose(page, "fr")
        assert page.locator("html").get_attribute("lang") == "fr"
        assert "Point de vente" in page.locator("h1").inner_text()
        page.get_by_label("Numéro du compteur").fill(site.drn(4))
        page.keyboard.press("Enter")
        page.wait_for_selector("#amount")
        # a comma before three digits, where the comma is the decimal separator: refused
        page.locator("#amount").fill("1,000")
        page.keyboard.press("Enter")
        error = page.locator("#amount-error")
        assert "peut se lire de deux façons" in error.inner_text()  # in the reader's language
        assert f"le montant comme 50,00 ou 1{NBSP}000,00" in error.inner_text()
        assert page.locator("#amount").get_attribute("aria-invalid") == "true"
        shot(page, "pos-amount-two-ways", site)
        page.locator("#amount").fill("R1 000")
        page.keyboard.press("Enter")
        page.wait_for_selector("#breakdown")
        assert page.locator("#total").inner_text() == f"R{NBSP}1{NBSP}000,00"
        assert "Vendre" in page.locator("#sell").inner_text()
        page.locator("#sell").click()
        page.wait_for_url(re.compile(r"/pos/sale/"))
        slip = page.locator("#slip").inner_text()
        assert "VENTE DE CRÉDIT - FACTURE" in slip and "Caissier :" in slip
        assert "TVA 15%" in slip and f"R{NBSP}1{NBSP}000,00" in slip
        assert re.search(r"\d{1,2} \w+\.? \d{4} \d\d:\d\d", slip)  # local date, no ISO T
        assert "Saisissez le jeton" in page.locator("#instructions").inner_text()
        shot(page, "sale-french", site)
    finally:
        page.goto(site.url + "/pos")
        _choose(page, "en")
    assert "Point of sale" in page.locator("h1").inner_text()
