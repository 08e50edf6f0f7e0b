"""Amount encodings (spec digest §3).

TransferAmount: 16 bits = exponent(2) | mantissa(14), value m·10^e + offset(e).  Used for
credit in tenths of a unit (class 0 subclasses 0-3) and for watts (MPL, MPPUL).  Every
conversion rounds up in the customer's favour; a mantissa that rounds to 16384 carries into
the next exponent.  Out-of-range values raise: a silent clamp would sell the wrong credit.

Currency (class 0 subclasses 4-7): sign + 5-bit exponent + 14-bit mantissa, in 10^-5 units;
positive magnitudes round up, negative magnitudes round down.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from sts.errors import AmountOutOfRange

MANTISSA_LIMIT = 1 << 14
# offset(e) = sum_{n=1..e} 2^14 * 10^(n-1)
POW10: tuple[int, ...] = tuple(10**e for e in range(32))
_OFFSETS: tuple[int, ...] = tuple(MANTISSA_LIMIT * (POW10[e] - 1) // 9 for e in range(32))
TRANSFER_MAX = 16383 * 1000 + _OFFSETS[3]  # 18 201 624
CURRENCY_MAX = 16383 * 10**31 + _OFFSETS[31]  # in 10^-5 units


def encode_transfer(value: int, *, field: str = "amount") -> int:
    """16-bit TransferAmount field for a non-negative integer count (tenths or watts)."""
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


def parse_decimal(text: object, *, field: str) -> Decimal:
    """A finite decimal from a string or int; anything else names the field."""
    if isinstance(text, bool) or not isinstance(text, (str, int, Decimal)):
        raise AmountOutOfRange(f"{field} must be a decimal string, got {text!r}", field=field)
    try:
        value = Decimal(text.strip() if isinstance(text, str) else text)
    except InvalidOperation:
        raise AmountOutOfRange(f"{field} {text!r} is not a decimal number", field=field) from None
    if not value.is_finite():
        raise AmountOutOfRange(f"{field} {text!r} is not a finite number", field=field)
    return value


def plain_tenths(text: str) -> int | None:
    """Tenths, rounded up, of a plain `123.45` string of ASCII digits (the common case, without
    Decimal); None for anything else (signs, spaces, exponents, `.5`, `12.`)."""
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
    if tenths is None:
        value = parse_decimal(units, field=field)
        if value < 0:
            raise AmountOutOfRange(f"{field} {units} is negative", field=field)
        tenths = int((value * 10).to_integral_value(rounding=ROUND_CEILING))
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
    value = parse_decimal(watts, field=field)
    if value < 0:
        raise AmountOutOfRange(f"{field} {watts} is negative", field=field)
    whole = int(value.to_integral_value(rounding=ROUND_CEILING))
    if whole > TRANSFER_MAX:
        raise AmountOutOfRange(f"{field} {watts} exceeds the maximum {TRANSFER_MAX} W", field=field)
    return whole


def encode_watts(watts: object, *, field: str = "mpl_watts") -> int:
    return encode_transfer(watts_to_int(watts, field=field), field=field)


# --- currency ---------------------------------------------------------------------------


def encode_currency(amount: object, *, field: str = "currency") -> tuple[int, int, int]:
    """(sign, exponent 0..31, 14-bit mantissa) for a signed amount in currency units."""
    value = parse_decimal(amount, field=field)
    scaled = value * 100000
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
    value = Decimal(magnitude) / 100000
    return -value if sign else value


def format_currency(value: Decimal) -> str:
    return f"{value:.5f}"


def format_units(value: Decimal) -> str:
    return f"{value:.1f}"
