"""Money as people write and read it (`sts.vending.money_text`): what each utility's locale
shows, that what it shows reads back to the same amount, and that what could be read two ways
is refused naming the field."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent
from hypothesis import given
from hypothesis import strategies as st

from sts.errors import InputError, InvalidAmount
from sts.vending.money_text import MoneyStyle, check_locale, style

NBSP, NNBSP = "\u00a0", "\u202f"
UTILITIES = [("en_ZA", "ZAR"), ("en_KE", "KES"), ("fr_CI", "XOF"), ("fr_CM", "XAF"),
             ("en_NG", "NGN"), ("fr_FR", "EUR"), ("en_IN", "INR"), ("en_US", "USD")]


def test_each_utility_writes_money_its_own_way() -> None:
    assert style("en_ZA", "ZAR").amount("1024800") == f"R{NBSP}1{NBSP}024{NBSP}800,00"
    assert style("en_KE", "KES").amount(Decimal("1024800.00")) == f"Ksh{NBSP}1,024,800.00"
    assert style("fr_CI", "XOF").amount("1024800") == f"1{NNBSP}024{NNBSP}800{NBSP}F{NNBSP}CFA"
    assert style("en_ZA", "ZAR").number("1000000.00") == f"1{NBSP}000{NBSP}000,00"
    assert style("en_ZA", "ZAR").rate("0.15") == "15%"
    assert style("en_NG", "NGN").rate(Decimal("0.075")) == "7.5%"
    assert style("fr_CI", "XOF").rate("0.18") == f"18{NBSP}%"
    assert style("en_ZA", "ZAR").amount(None) == ""


def test_a_utility_without_a_locale_gets_its_currencys() -> None:
    assert style(None, "KES").locale == "en_KE"
    assert style(None, "XOF").language == "fr"
    assert style("xx_YY", "ZAR").locale == "en_ZA"  # a damaged row still renders
    assert check_locale("fr-CI") == "fr_CI"
    for bad in ("fr", "nonsense", ""):
        with pytest.raises(InputError) as exc:
            check_locale(bad)
        assert exc.value.field == "locale"


@pytest.mark.parametrize(("locale", "currency", "typed", "amount"), [
    ("en_ZA", "ZAR", "1 000", "1000.00"), ("en_ZA", "ZAR", "R50", "50.00"),
    ("en_ZA", "ZAR", "50,00", "50.00"), ("en_ZA", "ZAR", "50.00", "50.00"),
    ("en_ZA", "ZAR", "R 1 024 800,00", "1024800.00"), ("en_ZA", "ZAR", "r 20", "20.00"),
    ("en_ZA", "ZAR", "ZAR 12,5", "12.50"), ("en_ZA", "ZAR", "1.000.000,00", "1000000.00"),
    ("en_KE", "KES", "1,000", "1000.00"), ("en_KE", "KES", "KSh 1,024,800.00", "1024800.00"),
    ("en_KE", "KES", "1 000", "1000.00"), ("en_KE", "KES", "Ksh50", "50.00"),
    ("fr_CI", "XOF", "1 000 F CFA", "1000.00"), ("fr_CI", "XOF", "5000 XOF", "5000.00"),
    ("en_IN", "INR", "10,24,800", "1024800.00"),
])
def test_what_people_type_is_read(locale: str, currency: str, typed: str, amount: str) -> None:
    assert style(locale, currency).plain(typed) == amount


@pytest.mark.parametrize(("locale", "currency", "typed"), [
    ("en_ZA", "ZAR", "1,000"), ("en_ZA", "ZAR", "1.000"), ("en_KE", "KES", "1.000"),
    ("fr_CI", "XOF", "2,500"), ("en_ZA", "ZAR", "12,34,567"), ("en_ZA", "ZAR", "1 00"),
    ("en_ZA", "ZAR", "1,000 000"), ("en_ZA", "ZAR", "50,"), ("en_ZA", "ZAR", "-50"),
    ("en_ZA", "ZAR", "R-50"), ("en_ZA", "ZAR", "R"), ("en_ZA", "ZAR", ""),
    ("en_ZA", "ZAR", "fifty"), ("en_ZA", "ZAR", "50.001"), ("en_ZA", "ZAR", "$50"),
    ("en_ZA", "ZAR", "1e3"), ("en_ZA", "ZAR", "٥٠"), ("en_KE", "KES", "1.000,000.00"),
])
def test_what_could_be_read_two_ways_is_refused(locale: str, currency: str,
                                                typed: str) -> None:
    with pytest.raises(InvalidAmount) as exc:
        style(locale, currency).parse(typed, field="top_up", label="the top-up")
    assert exc.value.field == "top_up"
    assert "type the top-up like" in exc.value.message


def test_the_refusal_shows_the_utilitys_own_example() -> None:
    with pytest.raises(InvalidAmount) as exc:
        style("en_ZA", "ZAR").parse("1,000")
    assert exc.value.message == (f"“1,000” could be read two ways: type the amount like 50,00 "
                                 f"or 1{NBSP}000,00")


def test_the_refusal_in_the_readers_language() -> None:
    from sts.vending import i18n

    with pytest.raises(InvalidAmount) as exc:
        style("fr_CI", "XOF").parse("2,500", _=i18n.translations("fr").gettext)
    assert exc.value.message == (f"« 2,500 » peut se lire de deux façons : saisissez le montant "
                                 f"comme 50 ou 1{NNBSP}000")


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"),
                      places=2, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(("locale", "currency"), UTILITIES)
@given(value=amounts)
def test_the_figures_are_babels(locale: str, currency: str, value: Decimal) -> None:
    """The style formats from CLDR data read once; Babel's own formatting agrees."""
    money = style(locale, currency)
    places = money.exponent if value == value.to_integral_value() else 2
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    number = re.sub(r"\.0+", "." + "0" * places if places else "", pattern).replace(
        "\u00a4#", "\u00a4\u00a0#")
    assert money.amount(value) == format_currency(value, currency, number, locale=locale,
                                                  currency_digits=False)
    assert money.units(value, 2) == format_decimal(value, "#,##0.00", locale=locale) or (
        locale == "en_IN")
    assert money.rate(value / 1000) == format_percent(value / 1000, re.sub(
        r"0(?=\D*$)", "0.##", Locale.parse(locale).percent_formats[None].pattern),
        locale=locale)


@pytest.mark.parametrize(("locale", "currency"), UTILITIES)
@given(value=amounts)
def test_what_is_shown_reads_back(locale: str, currency: str, value: Decimal) -> None:
    money = style(locale, currency)
    assert money.parse(money.amount(value)) == value
    assert money.parse(money.number(value)) == value


@given(value=amounts, locale_currency=st.sampled_from(UTILITIES))
def test_grouped_with_plain_spaces_reads_back(value: Decimal,
                                              locale_currency: tuple[str, str]) -> None:
    """What a keyboard types: ordinary spaces where the page shows no-break ones."""
    money = MoneyStyle(*locale_currency)
    typed = money.amount(value).replace(NBSP, " ").replace(NNBSP, " ")
    assert money.parse(typed) == value


@given(whole=st.integers(min_value=1, max_value=999), group=st.integers(0, 999))
def test_one_comma_before_three_digits_is_refused_where_comma_is_decimal(whole: int,
                                                                        group: int) -> None:
    typed = f"{whole},{group:03d}"
    with pytest.raises(InvalidAmount):
        style("en_ZA", "ZAR").parse(typed)
    assert style("en_KE", "KES").parse(typed) == Decimal(whole * 1000 + group)
