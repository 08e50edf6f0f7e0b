"""French, the second language: every string of every template is marked for translation and
translated in the French catalogue, and a French operator (or a French utility's) sees French
pages and a French slip."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from sts.vending import i18n

SRC = Path(i18n.__file__).resolve().parent.parent
TEMPLATES = SRC / "web" / "templates"
BUY_TEMPLATES = SRC / "payments" / "templates"
CATALOGUE = i18n.LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po"
JINJA = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.S)
WORDS = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
SHOWN_ATTRIBUTES = re.compile(r'\b(?:placeholder|aria-label|title|alt)="([^"]*)"')


def _bare_text(path: Path) -> list[str]:
    """Words a reader would see that are not inside `_()` (or another expression)."""
    text = JINJA.sub(" ", path.read_text(encoding="utf-8"))
    found = [v for v in SHOWN_ATTRIBUTES.findall(text) if WORDS.search(v)]
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    return found + [w for w in re.split(r"\s{2,}|\n", text) if WORDS.search(w)]


@pytest.mark.parametrize("template", sorted(p.relative_to(SRC).as_posix()
                                            for root in (TEMPLATES, BUY_TEMPLATES)
                                            for p in root.rglob("*.html")))
def test_every_shown_string_is_marked_for_translation(template: str) -> None:
    assert _bare_text(SRC / template) == []


def _msgids() -> set[str]:
    root = Path(i18n.__file__).resolve().parent.parent
    method_map = [("web/templates/**.html", "jinja2"), ("payments/templates/**.html", "jinja2"),
                  ("**.py", "python")]
    options = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"},
               "payments/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    return {msg[2] if isinstance(msg[2], str) else msg[2][0]
            for msg in extract_from_dir(str(root), method_map, options,
                                        keywords={"_": None, "N_": None, "gettext": None})}


def test_every_message_has_its_french() -> None:
    with CATALOGUE.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    french = {m.id: m.string for m in catalog if m.id and not m.fuzzy}
    missing = sorted(m for m in _msgids() if not french.get(m))
    assert missing == []
    # the placeholders of each message survive its translation
    for msgid, msgstr in french.items():
        assert isinstance(msgid, str) and isinstance(msgstr, str)
        assert sorted(re.findall(r"%\(\w+\)s|\{\w*\}", msgid)) == sorted(
            re.findall(r"%\(\w+\)s|\{\w*\}", msgstr)), msgid


def test_the_catalogue_has_no_fuzzy_or_empty_french() -> None:
    with CATALOGUE.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    assert [m.id for m in catalog if m.id and (m.fuzzy or not m.string)] == []


def test_a_refusal_reads_in_french_on_a_page_and_stays_english_in_the_api() -> None:
    from sts.errors import AmountTooLow, UnknownMeter
    from sts.meter.codes import meaning
    from sts.vending.money_text import style

    french = i18n.translations("fr").gettext
    unknown = UnknownMeter(i18n.N_("meter {pan} is not registered"), pan="0420", field="meter")
    assert unknown.message == "meter 0420 is not registered"  # the API's words
    assert unknown.as_dict() == {"code": "UNKNOWN_METER", "field": "meter",
                                 "message": "meter 0420 is not registered"}
    assert i18n.said(unknown) == unknown.message
    assert i18n.said(unknown, french) == "le compteur 0420 n'est pas enregistré"
    low = AmountTooLow(i18n.N_("the minimum purchase is {amount}"), amount=Decimal("1000.00"))
    assert low.message == "the minimum purchase is 1000.00"
    assert i18n.said(low, french) == "l'achat minimal est de 1000.00"
    # on a page its amount is written the utility's way, in English too
    rand = style("en_ZA", "ZAR").amount
    assert i18n.said(low, french, rand) == "l'achat minimal est de R\u00a01\u00a0000,00"
    assert i18n.said(low, money=rand) == "the minimum purchase is R\u00a01\u00a0000,00"
    # a message with no translation (or a plain one) reads as the English
    assert i18n.said(AmountTooLow("no such words"), french) == "no such words"
    # a form field breaking the text rule, refused before the service is called
    from sts.web.common import BadInput

    bad = BadInput("note", "U+0000")
    assert bad.message == ("note must not contain control characters or lone surrogates "
                           "(found U+0000)")
    assert bad.said(french).startswith("note ne doit contenir ni caractère de contrôle")
    # the meter layer's display meanings are marked, and the face translates them
    assert french(meaning("Accept")) == "Le jeton a été accepté."
    # the access policy's, the lists' and the delivery channels' refusals too
    from sts.errors import InputError, StsError
    from sts.vending.access.policy import Caller
    from sts.vending.listing import ListSpec, PageRequest
    from sts.vending.outbox import parse_deliver

    with pytest.raises(StsError) as err:
        Caller(1, "engineer", "tests", None).require("reverse")
    assert err.value.message == "the engineer role may not reverse"
    assert i18n.said(err.value, french) == "le rôle engineer ne peut pas : reverse"
    with pytest.raises(InputError) as err:
        PageRequest.parse({"page": "0"}, ListSpec(sorts={"n": ()}, default="n"))
    assert i18n.said(err.value, french) == "page doit être un nombre entier de 1 à 1,000,000"
    with pytest.raises(InputError) as err:
        parse_deliver([{"channel": "sms", "to": "12"}])
    assert err.value.message == "deliver.0.to must be an international number: + and 7-15 digits"
    assert i18n.said(err.value, french).startswith("deliver.0.to doit être un numéro international")
    # the registry's: an import file's header, a tariff, a supply group
    import io

    from sts.vending.registry.files import read_rows

    with pytest.raises(InputError) as err:
        list(read_rows(io.BytesIO(b"meter,colour\n600727000000000009,red\n"), "csv"))
    assert err.value.message.startswith("unknown column(s) 'colour'; known: ")
    assert i18n.said(err.value, french).startswith("colonne(s) inconnue(s) 'colour' ; connues : ")
    from sts.vending.registry.admin import check_float_move

    with pytest.raises(InputError) as err:
        check_float_move("10", "EFT 1", "gift")
    assert i18n.said(err.value, french).startswith("le type doit être l'un de top_up")
    # an amount's cents, a tariff's open block and a list link's seek key
    from sts.vending.tariff import Block, Tariff, parse_amount

    with pytest.raises(InputError) as err:
        parse_amount("1.234")
    assert err.value.message == "amount has more than two decimal places (cents)"
    assert i18n.said(err.value, french) == "amount a plus de deux décimales (centimes)"
    with pytest.raises(InputError) as err:
        Tariff("t", (Block(None, Decimal(1)), Block(None, Decimal(2))))
    assert i18n.said(err.value, french) == "seule la dernière tranche peut être ouverte"
    with pytest.raises(InputError) as err:
        PageRequest.parse({"after": "[1"}, ListSpec(sorts={"n": ()}, default="n"))
    assert err.value.field == "after"
    assert i18n.said(err.value, french).startswith("after doit être la clé de tri d'une ligne")


def test_the_language_follows_the_operator_then_the_utility() -> None:
    assert i18n.language_of("fr_CI") == "fr"
    assert i18n.language_of("en_ZA") == "en"
    assert i18n.language_of("en_ZA", "fr") == "fr"
    assert i18n.language_of("fr_CI", "en") == "en"
    assert i18n.language_of("sw_KE") == "en"  # no catalogue yet: English
    assert i18n.gettext("fr", "Point of sale") == "Point de vente"
    assert i18n.gettext("en", "Point of sale") == "Point of sale"


def test_a_browsers_languages_pick_among_those_we_speak() -> None:
    assert i18n.asked_language("fr-CI,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.asked_language("de-DE, en;q=0.5, fr;q=0.7") == "fr"  # by weight, not place
    assert i18n.asked_language("en, fr") == "en"  # equal weights: the first
    assert i18n.asked_language("fr;q=0, en;q=0.1") == "en"  # q=0 is "not this one"
    for nothing in (None, "", "de, sw", "*", "fr;q=abc", "fr;q=2", "fr;q=nan", ",;;=,",
                    "de," * 20 + "fr"):  # the 21st entry is not read
        assert i18n.asked_language(nothing) is None, nothing


@given(st.text(max_size=200))
def test_any_accept_language_header_gives_a_language_we_speak_or_none(header: str) -> None:
    assert i18n.asked_language(header) in (None, *i18n.LANGUAGES)


def _sign_in(client: Any, username: str, password: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post("/login", data={"csrf": csrf.group(1), "username": username,
                                       "password": password, "next": "/pos"},
                       follow_redirects=False)
    assert done.status_code == 303, done.text[:300]


def test_a_french_cashier_sees_french_pages_and_a_french_slip(demo: Any) -> None:
    from sts.vending.registry import operators as accounts

    accounts.add_operator(demo.registry, "awa", "vendor", vendor="Demo Vendor",
                          password="correct-horse-9")
    client = demo.client
    _sign_in(client, "awa", "correct-horse-9")
    english = client.get("/pos")
    assert "Point of sale" in english.text and 'lang="en"' in english.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', english.text)
    assert csrf is not None
    chosen = client.post("/me/language", data={"csrf": csrf.group(1), "language": "fr",
                                               "next": "/pos"}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/pos"
    drn = demo.meters[0]
    page = client.get("/pos", params={"meter": drn, "amount": "1 000"})
    assert 'lang="fr"' in page.text and "Point de vente" in page.text
    assert "Confirmer le client" in page.text and "Point of sale" not in page.text
    pid = re.search(r'name="purchase_id" value="([^"]+)"', page.text)
    assert pid is not None
    sold = client.post("/pos/sell", data={"csrf": csrf.group(1), "purchase_id": pid.group(1),
                                          "meter": drn, "amount": "R1 000"},
                       follow_redirects=False)
    assert sold.status_code == 303, sold.text[:500]
    sale = client.get(sold.headers["location"])
    slip = sale.text[sale.text.index('id="slip"'):]
    assert "FACTURE" in slip and "Caissier : awa" in slip and "TVA 15%" in slip
    assert "Saisissez le jeton" in slip and "R\u00a01\u00a0000,00" in slip
    # the API's text slip stays in the utility's language (English for the demo utility)
    out = demo.buy(drn, "50").json()
    assert "TAX INVOICE" in out["slip"]
    # the service's refusals in French on the page; the API's stay English
    wrong = client.get("/pos", params={"meter": "123456789012", "amount": "10"})
    assert "numéro de compteur a 11 ou 13 chiffres (vous en avez tapé 12)" in wrong.text
    assert demo.buy("12345678901", "50").json()["message"].isascii()
    refused_page = client.get("/admin/tariffs")
    assert refused_page.status_code == 403
    assert "Votre rôle (Caissier) ne permet pas d&#39;ouvrir cette page" in refused_page.text
    # the shift the sale opened: its money the utility's way
    shift = client.get("/pos/shift")
    assert "Ma session" in shift.text and "R\u00a01\u00a0000,00" in shift.text
    refused = client.post("/pos/shift/close", data={"csrf": csrf.group(1),
                                                    "counted_cash": "1,000"})
    assert refused.status_code == 422 and "se lire de deux façons" in refused.text


def test_every_back_office_page_renders_in_french(demo: Any) -> None:
    from sts.vending.registry import operators as accounts

    accounts.add_operator(demo.registry, "amadou", "admin", password="correct-horse-9")
    accounts.set_language(demo.registry, "Amadou", "fr")
    _sign_in(demo.client, "amadou", "correct-horse-9")
    demo.buy(demo.meters[0], "100")
    for path in ("/admin", "/admin/meters", "/admin/customers", "/admin/tariffs",
                 "/admin/vendors", "/admin/operators", "/admin/supply-groups", "/reports",
                 "/simulator", "/admin/vendors/statement?vendor=Demo%20Vendor"):
        page = demo.client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert 'lang="fr"' in page.text and "Administrateur" in page.text, path
    assert "R\u00a0" in demo.client.get("/admin/vendors").text  # the float, the utility's way
    with pytest.raises(Exception, match="language must be one of"):
        accounts.set_language(demo.registry, "amadou", "xx")


def test_the_self_service_page_speaks_the_utilitys_french(demo: Any) -> None:
    import sqlalchemy as sa

    from sts.vending.registry.admin import DEMO_SGC
    from sts.vending.storage.tables import utilities

    demo.registry.add_vendor("M-Pesa", float_balance="1000000", sgcs=[DEMO_SGC])  # the channel
    with demo.service.db.begin() as conn:
        conn.execute(sa.update(utilities).values(locale="fr_CI"))
    client = demo.client
    start = client.get("/buy")
    assert start.status_code == 200 and 'lang="fr"' in start.text
    assert "Acheter un jeton" in start.text and "Buy a token" not in start.text
    unknown = client.post("/buy/meter", data={"meter": "12345"})
    assert unknown.status_code == 422 and 'lang="fr"' in unknown.text
    assert "Buy" not in unknown.text
    drn = demo.meters[0]
    amount = client.post("/buy/meter", data={"meter": drn})
    assert amount.status_code == 200, amount.text[amount.text.find("<main"):]
    assert "Quel montant ?" in amount.text and "\u00a0ZAR" in amount.text  # "10,00 ZAR"
    # the amount as a French utility writes it; refused in French when it reads two ways
    two_ways = client.post("/buy/quote", data={"meter": drn, "amount": "1,000"})
    assert two_ways.status_code == 422 and "deux façons" in two_ways.text
    quote = client.post("/buy/quote", data={"meter": drn, "amount": "1\u00a0000,50"})
    assert quote.status_code == 200, quote.text[:500]
    assert "1\u202f000,50\u00a0ZAR" in quote.text or "1\u00a0000,50\u00a0ZAR" in quote.text
    assert 'name="amount" value="1000.50"' in quote.text  # the service's own decimal
    # the USSD menu speaks the utility's language too
    from sts.payments import ussd

    caller = demo.service.channel_caller("M-Pesa", "mpesa")

    def screen(text: str) -> str:
        return ussd.answer(demo.service, caller, None, "254711000001", text)  # type: ignore[arg-type]

    assert screen("").startswith("CON Électricité prépayée\n1. Vérifier un compteur")
    assert screen("9") == "END Veuillez choisir 1, 2, 3 ou 4."
    assert screen("2*12345").startswith("END Ce numéro de compteur est inconnu")
    assert screen(f"2*{drn}").endswith("\u00a0ZAR)") and "Saisissez le montant" in screen(f"2*{drn}")


def test_the_self_service_page_speaks_the_browsers_language(demo: Any) -> None:
    import sqlalchemy as sa

    from sts.vending.registry.admin import DEMO_SGC
    from sts.vending.storage.tables import utilities

    demo.registry.add_vendor("M-Pesa", float_balance="1000000", sgcs=[DEMO_SGC])

    def start(asked: str | None) -> Any:
        page = demo.client.get("/buy", headers={"Accept-Language": asked} if asked else {})
        assert page.status_code == 200 and page.headers["vary"] == "Accept-Language"
        return page

    english = start(None)  # the utility's language
    assert 'lang="en"' in english.text and english.headers["content-language"] == "en"
    french = start("fr-CI,fr;q=0.9,en;q=0.5")
    assert 'lang="fr"' in french.text and "Acheter un jeton" in french.text
    assert french.headers["content-language"] == "fr"
    assert "Buy a token" in start("de-DE").text  # no words for German: the utility's
    # a refusal is in the browser's language too; the money stays the utility's
    refused = demo.client.post("/buy/meter", data={"meter": "12345"},
                               headers={"Accept-Language": "fr"})
    assert refused.status_code == 422 and 'lang="fr"' in refused.text
    assert "Buy" not in refused.text
    with demo.service.db.begin() as conn:
        conn.execute(sa.update(utilities).values(locale="fr_CI"))
    assert "Buy a token" in start("en-GB,en;q=0.9").text  # English asked on a French utility
    assert "Acheter un jeton" in start("de-DE").text
