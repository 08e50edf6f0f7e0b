"""Money as people write and read it: one rule per utility, from its locale (CLDR via Babel).

A utility keeps a locale (`utilities.locale`, e.g. `en_ZA`, `en_KE`, `fr_CI`) beside its
currency; `style(locale, currency)` is the one place pages, slips, CSV headers and reports get
their money text from (`R 1 024 800,00`, `Ksh 1,024,800.00`, `1 024 800 F CFA`).

Input goes the other way: `MoneyStyle.parse` reads what a cashier or clerk typed in that
utility's own way (grouping by spaces or the locale's separator, its decimal separator, its
symbol or code before or after) and refuses what could be read two ways (`1,000` where a
comma is the decimal separator) with a plain-language message naming the field.  The API
(`/v1`, Electrum, XMLVend) never comes here: it keeps its exact decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property, lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import DateTimePattern
from babel.dates import parse_pattern as parse_date_pattern
from babel.numbers import (
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    get_minus_sign_symbol,
    parse_pattern,
)
from sqlalchemy import select

from sts.errors import InputError, InvalidAmount
from sts.vending.currency import ISO_4217
from sts.vending.i18n import N_
from sts.vending.storage.database import Database
from sts.vending.storage.tables import utilities

# the locale a utility gets when none is set: the currency's main market
DEFAULT_LOCALES = {
    "ZAR": "en_ZA", "NAD": "en_NA", "BWP": "en_BW", "LSL": "en_LS", "SZL": "en_SZ",
    "MZN": "pt_MZ", "ZMW": "en_ZM", "MWK": "en_MW", "KES": "en_KE", "UGX": "en_UG",
    "TZS": "en_TZ", "RWF": "en_RW", "BIF": "fr_BI", "NGN": "en_NG", "GHS": "en_GH",
    "XOF": "fr_CI", "XAF": "fr_CM", "GMD": "en_GM", "SLE": "en_SL", "LRD": "en_LR",
    "MUR": "en_MU", "MGA": "fr_MG", "CDF": "fr_CD", "INR": "en_IN", "PKR": "en_PK",
    "USD": "en_US", "EUR": "fr_FR", "GBP": "en_GB",
}
FALLBACK_LOCALE = "en_ZA"
Gettext = Callable[[str], str]


def _same(text: str) -> str:
    return text

SPACES = " \u00a0\u202f\u2009"  # space, no-break space, narrow no-break space, thin space
_SEPARATORS = ".,'\u2019" + SPACES
_SIGNS = "+-\u2212"


def default_locale(currency: str) -> str:
    return DEFAULT_LOCALES.get(currency.upper(), FALLBACK_LOCALE)


def check_locale(text: str, field: str = "locale") -> str:
    """A locale a utility may keep: language and territory known to CLDR (`en_ZA`, `fr-CI`)."""
    try:
        loc = Locale.parse(text.strip().replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        raise InputError(f"{field} must be a language and country such as en_ZA, en_KE or "
                         "fr_CI", field=field) from None
    if not loc.territory:
        raise InputError(f"{field} must name the country too (en_ZA, not en)", field=field)
    return str(loc)


@dataclass(frozen=True)
class _Rule:
    """A locale's number rule read once from CLDR: separators, grouping sizes, where the
    currency symbol and the percent sign stand."""

    decimal: str
    group: str
    minus: str
    primary: int
    secondary: int
    money_prefix: str
    money_suffix: str
    percent_prefix: str
    percent_suffix: str
    date: DateTimePattern
    time: DateTimePattern
    loc: Locale


@lru_cache(maxsize=64)
def _symbol(locale: str, currency: str) -> str:
    return str(get_currency_symbol(currency, locale=locale))


@lru_cache(maxsize=64)
def _rule(locale: str, symbol: str) -> _Rule:
    loc = Locale.parse(locale)
    money = parse_pattern(loc.currency_formats["standard"].pattern)
    percent = parse_pattern(loc.percent_formats[None].pattern)
    prefix = money.prefix[0].replace("\u00a4", symbol)
    if money.prefix[0].endswith("\u00a4"):  # "R1 024,00" reads badly: "R 1 024,00"
        prefix += "\u00a0"
    primary, secondary = money.grouping
    return _Rule(
        decimal=str(get_decimal_symbol(loc)), group=str(get_group_symbol(loc)),
        minus=str(get_minus_sign_symbol(loc)), primary=primary, secondary=secondary,
        money_prefix=prefix, money_suffix=money.suffix[0].replace("\u00a4", symbol),
        percent_prefix=percent.prefix[0], percent_suffix=percent.suffix[0],
        date=parse_date_pattern(loc.date_formats["medium"].pattern),
        time=parse_date_pattern("HH:mm"), loc=loc)


@dataclass(frozen=True)
class MoneyStyle:
    """How one utility writes money: its locale and currency."""

    locale: str
    currency: str

    @property
    def language(self) -> str:
        return self.locale.split("_", 1)[0]

    @property
    def exponent(self) -> int:
        return ISO_4217.get(self.currency, ("", 2))[1]

    @property
    def symbol(self) -> str:
        return _symbol(self.locale, self.currency)

    @cached_property
    def _r(self) -> _Rule:
        return _rule(self.locale, self.symbol)

    @property
    def decimal_symbol(self) -> str:
        return self._r.decimal

    @property
    def group_symbol(self) -> str:
        return self._r.group

    def _places(self, value: Decimal) -> int:
        """The currency's minor unit, or cents when the amount has them (a franc CFA
        amount is whole francs, unless the ledger holds cents)."""
        if value == value.quantize(Decimal(1).scaleb(-self.exponent)):
            return self.exponent
        return max(self.exponent, 2)

    def _digits(self, value: Decimal, places: int, *, trim: bool = False) -> str:
        """`value` grouped with the locale's separators, `places` decimals (fewer when
        `trim`: 7.5 rather than 7.50)."""
        r = self._r
        text = f"{abs(value):.{places}f}"
        whole, _, fraction = text.partition(".")
        if trim:
            fraction = fraction.rstrip("0")
        groups = [whole[-r.primary:]] if len(whole) > r.primary else [whole]
        rest = whole[:-r.primary] if len(whole) > r.primary else ""
        while rest:
            groups.insert(0, rest[-r.secondary:])
            rest = rest[:-r.secondary]
        out = r.group.join(groups) + (r.decimal + fraction if fraction else "")
        return r.minus + out if value < 0 and value.quantize(Decimal(1).scaleb(-places)) else out

    def amount(self, value: Decimal | str | int | None) -> str:
        """`value` with the currency symbol, grouped, in the locale's way ("" for None)."""
        if value is None or value == "":
            return ""
        dec = Decimal(str(value))
        r = self._r
        return r.money_prefix + self._digits(dec, self._places(dec)) + r.money_suffix

    def number(self, value: Decimal | str | int | None) -> str:
        """`value` grouped in the locale's way, without the symbol (table cells)."""
        if value is None or value == "":
            return ""
        dec = Decimal(str(value))
        return self._digits(dec, self._places(dec))

    def units(self, value: Decimal | str | None, places: int = 1) -> str:
        """A quantity of energy or water (kWh, kl) in the locale's way."""
        if value is None or value == "":
            return ""
        return self._digits(Decimal(str(value)), places)

    def rate(self, value: Decimal | str | None) -> str:
        """A rate (VAT 0.15) as a percentage: "15%", "15 %" in French."""
        if value is None or value == "":
            return ""
        r = self._r
        return (r.percent_prefix + self._digits(Decimal(str(value)) * 100, 2, trim=True)
                + r.percent_suffix)

    def when(self, at: datetime) -> str:
        """A date and time as the utility reads it (local zone already applied)."""
        r = self._r
        return f"{r.date.apply(at, r.loc)} {r.time.apply(at, r.loc)}"

    def header(self, name: str) -> str:
        """A CSV column of money, naming the currency: "amount (ZAR)"."""
        return f"{name} ({self.currency})"

    @property
    def example(self) -> str:
        return self.number(Decimal(50).quantize(Decimal(1).scaleb(-self.exponent)))

    def parse(self, text: str | None, *, field: str = "amount", label: str = N_("the amount"),
              _: Gettext = _same) -> Decimal:
        """What a person typed, as a Decimal; refused (InvalidAmount naming `field`, in the
        reader's words `_`) when empty, not a number, signed or readable two ways."""
        return _parse(self, text or "", field, label, _)

    def plain(self, text: str | None, *, field: str = "amount", label: str = N_("the amount"),
              _: Gettext = _same) -> str:
        """What a person typed as the service's exact decimal string ("1000.00")."""
        return f"{self.parse(text, field=field, label=label, _=_):f}"


@lru_cache(maxsize=64)
def style(locale: str | None, currency: str) -> MoneyStyle:
    """The money style of a utility (its locale, or its currency's usual one)."""
    code = (currency or "ZAR").upper()
    loc = locale or default_locale(code)
    try:
        loc = check_locale(loc)
    except InputError:
        loc = default_locale(code)
    return MoneyStyle(loc, code)


def _refuse(st: MoneyStyle, field: str, label: str, why: str, _: Gettext) -> InvalidAmount:
    thousand = st.number(Decimal(1000).quantize(Decimal(1).scaleb(-st.exponent)))
    return InvalidAmount(_("{why}: type {label} like {example} or {thousand}").format(
        why=why, label=_(label), example=st.example, thousand=thousand), field=field)


def _symbols(st: MoneyStyle) -> list[str]:
    """What may stand for the currency around the digits, longest first."""
    found = {st.symbol, st.currency, str(get_currency_symbol(st.currency, locale="en"))}
    found.add(str(Locale.parse(st.locale).currency_symbols.get(st.currency, "")))
    out = set()
    for s in found:
        if s:
            out.add(s)
            out.add("".join(" " if ch in SPACES else ch for ch in s))
    return sorted(out, key=len, reverse=True)


def _strip_symbol(st: MoneyStyle, text: str) -> str:
    folded = "".join(" " if ch in SPACES else ch for ch in text).strip()
    low = folded.casefold()
    for sym in _symbols(st):
        s = sym.casefold()
        if low.startswith(s):
            return folded[len(sym):].strip()
        if low.endswith(s):
            return folded[:-len(sym)].strip()
    return folded


def _groups_ok(st: MoneyStyle, groups: list[str]) -> bool:
    """Digits between grouping separators: the last three, the ones before the locale's
    secondary size (three; two in India), the first one to that many."""
    if len(groups) == 1:
        return True
    pattern = Locale.parse(st.locale).decimal_formats[None]
    primary, secondary = pattern.grouping
    sizes_ok = len(groups[-1]) == primary and all(len(g) == secondary for g in groups[1:-1])
    return sizes_ok and 1 <= len(groups[0]) <= secondary


def _parse(st: MoneyStyle, raw: str, field: str, label: str, _: Gettext) -> Decimal:
    shown = raw.strip()
    text = _strip_symbol(st, raw)
    if not text:
        raise _refuse(st, field, label, _("Enter {label}").format(label=_(label)), _)
    if text[0] in _SIGNS or text[-1] in _SIGNS:
        raise _refuse(st, field, label, _("Leave out the sign (“{text}”)").format(text=shown), _)
    if any(not (ch.isascii() and ch.isdigit()) and ch not in _SEPARATORS for ch in text):
        raise _refuse(st, field, label, _("“{text}” is not an amount").format(text=shown), _)
    text = re.sub(r" +", " ", text)
    marks = [ch for ch in text if not ch.isdigit()]
    kinds = list(dict.fromkeys(marks))  # in order of first appearance
    whole, fraction = text, ""
    if marks and marks[-1] in ".," and marks.count(marks[-1]) == 1 and (
            len(kinds) > 1 or len(text) - text.rindex(marks[-1]) - 1 != 3):
        # the last mark is the decimal separator when another kind of mark groups the digits
        # before it, or when it is not followed by exactly three digits (a group)
        at = text.rindex(marks[-1])
        whole, fraction = text[:at], text[at + 1:]
        if not fraction:
            raise _refuse(st, field, label, _("“{text}” ends with a separator").format(text=shown), _)
    elif len(kinds) == 1 and len(marks) == 1 and marks[0] in ".,":
        # one comma or point before three digits: a thousands separator where the locale
        # groups with it, otherwise it could be read two ways
        group = st.group_symbol
        if marks[0] != group:
            raise _refuse(st, field, label, _("“{text}” could be read two ways").format(text=shown), _)
    group_marks = [ch for ch in whole if not ch.isdigit()]
    if len(set(group_marks)) > 1 or (fraction and not fraction.isdigit()):
        raise _refuse(st, field, label, _("“{text}” mixes separators").format(text=shown), _)
    groups = re.split(r"[^0-9]", whole)
    if any(not g for g in groups) or not _groups_ok(st, groups):
        raise _refuse(st, field, label, _("“{text}” has its digits grouped wrongly").format(text=shown), _)
    try:
        value = Decimal("".join(groups) + ("." + fraction if fraction else ""))
    except InvalidOperation:
        raise _refuse(st, field, label, _("“{text}” is not an amount").format(text=shown), _) from None
    places = max(st.exponent, 2)
    if value != value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):
        raise _refuse(st, field, label, _("“{text}” has more than {places} decimal places")
                      .format(text=shown, places=places), _)
    return value.quantize(Decimal(1).scaleb(-places))


def house_style(db: Database) -> MoneyStyle:
    """The money style of the pages: the utility this server runs for (the first one; a
    server serves one utility, whose meters may span several supply groups)."""
    with db.read() as conn:
        row = conn.execute(select(utilities.c.locale, utilities.c.currency)
                           .order_by(utilities.c.id).limit(1)).first()
    if row is None:
        return style(None, "ZAR")
    return style(row.locale, str(row.currency))
