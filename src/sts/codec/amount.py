"""Amount encodings (spec digest §3).

TransferAmount: 16 bits = exponent(2) | mantissa(14), value m·10^e + offset(e).  Used for
credit in tenths of a unit (class 0 subclasses 0-3) and for watts (MPL, MPPUL).  Every
conversion rounds up in the customer's favour; a mantissa that rounds to 16384 carries into
the next exponent.  Out-of-range values raise: a silent clamp would sell the wrong credit.

Currency (class 0 subclasses 4-7): sign + 5-bit exponent + 14-bit mantissa, in 10^-5 units;
positive magnitudes round up, negative magnitudes round down.
"""

from __future__ import annotations

import re
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

from sts.codec.describe import describe
from sts.errors import AmountOutOfRange, InvalidAmount

MANTISSA_LIMIT = 1 << 14
# offset(e) = sum_{n=1..e} 2^14 * 10^(n-1)
POW10: tuple[int, ...] = tuple(10**e for e in range(32))
_OFFSETS: tuple[int, ...] = tuple(MANTISSA_LIMIT * (POW10[e] - 1) // 9 for e in range(32))
TRANSFER_MAX = 16383 * 1000 + _OFFSETS[3]  # 18 201 624
CURRENCY_MAX = 16383 * 10**31 + _OFFSETS[31]  # in 10^-5 units


def encode_transfer(value: int, *, field: str = "amount") -> int:
    """16-bit TransferAmount field for a non-negative integer count (tenths or watts)."""
    if 0 <= value < MANTISSA_LIMIT:
        return value  # exponent 0: the field is the count itself (most tokens)
    if value < 0 or value > TRANSFER_MAX:
        raise AmountOutOfRange(
            f"{field} {value} is outside the TransferAmount range 0..{TRANSFER_MAX}", field=field
        )
    for e in range(4):
        base = _OFFSETS[e]
        m = -((base - value) // POW10[e])  # ceil((value - base) / 10^e)
        if m < MANTISSA_LIMIT:
            return (e << 14) | max(m, 0)
    raise AssertionError("unreachable: value checked against TRANSFER_MAX")


def decode_transfer(field_value: int) -> int:
    """The integer count encoded by a 16-bit TransferAmount field."""
    e = field_value >> 14
    return (field_value & 0x3FFF) * POW10[e] + _OFFSETS[e]


AMOUNT_MAX_CHARS = 40  # longer than any encodable amount; refuses a 5,000-digit text cheaply
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# exact arithmetic over the whole currency range (35+ significant digits; default is 28)
EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero,
                                                           Overflow])
AMOUNT_RULE = 'must be a plain decimal string of ASCII digits such as "50.00"'


def parse_amount_text(value: object, *, field: str, signed: bool = False) -> Decimal:
    """The one amount rule for the engine, CLI and HTTP.

    Accepts exactly a plain ASCII decimal string (`^[0-9]+(\\.[0-9]+)?$`, a leading '-' only
    when `signed`) of at most AMOUNT_MAX_CHARS characters, or a finite `Decimal`.  Everything
    else (other digit scripts, "1_000", " 50 ", "5e1", "+5", JSON numbers, booleans, null, ...)
    raises InvalidAmount saying the rule and what was received: a number written some other
    way is a mistake to report, never a value to guess.  Range checks are the caller's
    (AmountOutOfRange).
    """
    sign_rule = "" if signed else " (no sign)"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"{field} must be a finite decimal, got {value}", field=field)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        if value.adjusted() >= AMOUNT_MAX_CHARS or exponent < -AMOUNT_MAX_CHARS:
            raise InvalidAmount(f"{field} has too many digits (at most {AMOUNT_MAX_CHARS})",
                                field=field)
        if value < 0 and not signed:
            raise InvalidAmount(f"{field} {AMOUNT_RULE}{sign_rule}, got {describe(value)}",
                                field=field)
        return value
    if not isinstance(value, str):
        raise InvalidAmount(f"{field} {AMOUNT_RULE}{sign_rule}, got {describe(value)}",
                            field=field)
    if len(value) > AMOUNT_MAX_CHARS:
        raise InvalidAmount(
            f"{field} {AMOUNT_RULE}{sign_rule} of at most {AMOUNT_MAX_CHARS} characters, got "
            f"{describe(value)}",
            field=field,
        )
    body = value[1:] if signed and value.startswith("-") else value
    if not _PLAIN.fullmatch(body):
        raise InvalidAmount(f"{field} {AMOUNT_RULE}{sign_rule}, got {describe(value)}",
                            field=field)
    return Decimal(value)  # exact: construction from text never rounds


def plain_tenths(text: str) -> int | None:
    """Tenths, rounded up, of a plain `123.45` string of ASCII digits (the common case, without
    Decimal); None for anything else (signs, spaces, exponents, `.5`, `12.`)."""
    if len(text) > AMOUNT_MAX_CHARS:
        return None
    whole, dot, frac = text.partition(".")
    if not whole or not whole.isascii() or not whole.isdigit():
        return None
    if dot and (not frac or not frac.isascii() or not frac.isdigit()):
        return None
    tenths = int(whole) * 10
    if frac:
        tenths += ord(frac[0]) - 48
        if frac[1:].strip("0"):
            tenths += 1
    return tenths


def units_to_tenths(units: object, *, field: str = "units") -> int:
    """Tenths of a unit for a credit amount, rounded up (customer's favour)."""
    tenths = plain_tenths(units) if type(units) is str else None
    if tenths is None:  # anything but the common plain form: the one rule says why
        value = parse_amount_text(units, field=field, signed=True)
        if value < 0:
            raise AmountOutOfRange(f"{field} {units} is negative", field=field)
        tenths = int(EXACT.multiply(value, Decimal(10)).to_integral_value(rounding=ROUND_CEILING))
    if tenths > TRANSFER_MAX:
        raise AmountOutOfRange(
            f"{field} {units} exceeds the maximum {Decimal(TRANSFER_MAX) / 10}", field=field
        )
    return tenths


def encode_units(units: object, *, field: str = "units") -> int:
    return encode_transfer(units_to_tenths(units, field=field), field=field)


def decode_units(field_value: int) -> Decimal:
    """Units (kWh, kl, m3, min) encoded by a credit TransferAmount field."""
    return Decimal(decode_transfer(field_value)) / 10


def watts_to_int(watts: object, *, field: str = "mpl_watts") -> int:
    """Whole watts, rounded up, from a plain decimal string or a JSON integer (watts are a
    count, and FORMAT.md writes them as integers)."""
    if isinstance(watts, int) and not isinstance(watts, bool):
        whole = watts
    else:
        whole = int(parse_amount_text(watts, field=field, signed=True)
                    .to_integral_value(rounding=ROUND_CEILING))
    if whole < 0:
        raise AmountOutOfRange(f"{field} {describe(watts)} is negative", field=field)
    if whole > TRANSFER_MAX:
        raise AmountOutOfRange(
            f"{field} {describe(watts)} exceeds the maximum {TRANSFER_MAX} W", field=field
        )
    return whole


def encode_watts(watts: object, *, field: str = "mpl_watts") -> int:
    return encode_transfer(watts_to_int(watts, field=field), field=field)


# --- currency ---------------------------------------------------------------------------


def encode_currency(amount: object, *, field: str = "currency") -> tuple[int, int, int]:
    """(sign, exponent 0..31, 14-bit mantissa) for a signed amount in currency units."""
    value = parse_amount_text(amount, field=field, signed=True)
    scaled = EXACT.multiply(value, Decimal(100000))
    sign = 1 if value < 0 else 0
    magnitude_exact = -scaled if sign else scaled
    # positive: round the magnitude up; negative: round the magnitude down (customer's favour)
    rounding = ROUND_FLOOR if sign else ROUND_CEILING
    magnitude = int(magnitude_exact.to_integral_value(rounding=rounding))
    if magnitude > CURRENCY_MAX:
        raise AmountOutOfRange(
            f"{field} {amount} exceeds the currency range (±{Decimal(CURRENCY_MAX) / 100000:.5E})",
            field=field,
        )
    for e in range(32):
        excess = magnitude - _OFFSETS[e]
        step = POW10[e]
        m = excess // step if sign else -(-excess // step)
        if m < MANTISSA_LIMIT:
            return sign, e, m
    raise AssertionError("unreachable: magnitude checked against CURRENCY_MAX")


def decode_currency(sign: int, exponent: int, mantissa: int) -> Decimal:
    magnitude = mantissa * POW10[exponent] + _OFFSETS[exponent]
    value = Decimal(magnitude).scaleb(-5, EXACT)  # exact: up to 36 significant digits
    return -value if sign else value


def format_currency(value: Decimal) -> str:
    return f"{value:.5f}"


def format_units(value: Decimal) -> str:
    return f"{value:.1f}"
