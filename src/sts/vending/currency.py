"""Each utility sells in one currency (`utilities.currency`, ISO 4217 alphabetic or numeric).
Interfaces that carry money as minor units plus a numeric code convert here, and a request in
another currency is refused."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, select

from sts.errors import InvalidAmount, UnknownMeter
from sts.vending.i18n import N_
from sts.vending.storage.tables import meters, supply_groups, utilities, vending_keys

# ISO 4217: alphabetic code -> (numeric code, minor unit exponent), for the currencies of the
# STS prepayment markets and the usual settlement currencies.
ISO_4217: dict[str, tuple[str, int]] = {
    "ZAR": ("710", 2), "NAD": ("516", 2), "BWP": ("072", 2), "LSL": ("426", 2),
    "SZL": ("748", 2), "MZN": ("943", 2), "ZMW": ("967", 2), "MWK": ("454", 2),
    "ZWL": ("932", 2), "KES": ("404", 2), "UGX": ("800", 0), "TZS": ("834", 2),
    "RWF": ("646", 0), "BIF": ("108", 0), "ETB": ("230", 2), "NGN": ("566", 2),
    "GHS": ("936", 2), "XOF": ("952", 0), "XAF": ("950", 0), "GMD": ("270", 2),
    "SLE": ("925", 2), "LRD": ("430", 2), "MUR": ("480", 2), "MGA": ("969", 2),
    "AOA": ("973", 2), "CDF": ("976", 2), "SSP": ("728", 2), "SDG": ("938", 2),
    "EGP": ("818", 2), "MAD": ("504", 2), "TND": ("788", 3), "INR": ("356", 2),
    "PKR": ("586", 2), "BDT": ("050", 2), "LKR": ("144", 2), "NPR": ("524", 2),
    "PHP": ("608", 2), "IDR": ("360", 2), "MYR": ("458", 2), "JMD": ("388", 2),
    "TTD": ("780", 2), "BRL": ("986", 2), "ARS": ("032", 2), "USD": ("840", 2),
    "EUR": ("978", 2), "GBP": ("826", 2), "AUD": ("036", 2), "NZD": ("554", 2),
    "CAD": ("124", 2), "CHF": ("756", 2), "CNY": ("156", 2), "JPY": ("392", 0),
}
_BY_NUMERIC = {num: (alpha, exp) for alpha, (num, exp) in ISO_4217.items()}


@dataclass(frozen=True)
class Currency:
    alpha: str
    numeric: str
    exponent: int

    def to_major(self, minor: int, *, field: str) -> Decimal:
        """Minor units to the decimal amount the vending service takes."""
        if minor < 0:
            raise InvalidAmount("the amount must not be negative", field=field)
        return Decimal(minor).scaleb(-self.exponent)

    def to_minor(self, major: Decimal | str) -> int:
        value = Decimal(major).scaleb(self.exponent)
        if value != value.to_integral_value():
            raise InvalidAmount(f"{major} is finer than the {self.alpha} minor unit",
                                field="amount")
        return int(value)


def currency(code: str) -> Currency:
    """A currency by alphabetic or numeric ISO 4217 code."""
    code = code.strip().upper()
    if code in ISO_4217:
        num, exp = ISO_4217[code]
        return Currency(code, num, exp)
    if code in _BY_NUMERIC:
        alpha, exp = _BY_NUMERIC[code]
        return Currency(alpha, code, exp)
    raise InvalidAmount(f"currency {code!r} is not a known ISO 4217 code", field="currency")


def meter_currency(conn: Connection, pan: str) -> Currency:
    """The currency of the utility a meter belongs to (through its key's supply group)."""
    code = conn.scalar(
        select(utilities.c.currency)
        .select_from(meters)
        .join(vending_keys, vending_keys.c.id == meters.c.key_id)
        .join(supply_groups, supply_groups.c.id == vending_keys.c.sgc_id)
        .join(utilities, utilities.c.id == supply_groups.c.utility_id)
        .where(meters.c.pan == pan))
    if code is None:
        raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field="meter")
    return currency(str(code))


def check_currency(expected: Currency, numeric: str, *, field: str) -> None:
    if numeric != expected.numeric:
        raise InvalidAmount(
            f"this meter's utility sells in {expected.alpha} ({expected.numeric}), "
            f"not {numeric}", field=field)
