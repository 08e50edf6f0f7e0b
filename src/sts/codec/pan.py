"""MeterPAN, DRN and the key-derivation input blocks (spec digest §7.1, §7.3).

MeterPAN (18 digits) = IIN | DRN | PAN check digit, where the IIN is 600727 with an 11-digit
DRN or 0000 with a 13-digit DRN, and DRN = MfrCode (2 or 4 digits) | DSN (8) | DRN check digit.
Both check digits are Luhn.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sts.codec.describe import describe
from sts.errors import InputError, InvalidDrn, InvalidMeterNumber, InvalidPan

IIN_STS = "600727"
IIN_SHORT = "0000"
_IIN_FOR_DRN_LEN = {11: IIN_STS, 13: IIN_SHORT}


# ASCII digit -> its Luhn-doubled value as an ASCII digit (2d, less 9 past 9)
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_check_digit(digits: str) -> int:
    """Check digit to append to `digits` (double every second digit from the right)."""
    if digits.isascii() and digits.isdigit():  # the common case, summed in C
        raw = digits.encode()
        total = sum(raw[::-1][::2].translate(_DOUBLED)) + sum(raw[::-1][1::2]) - 48 * len(raw)
        return (10 - total % 10) % 10
    return _luhn_slow(digits)


def _luhn_slow(digits: str) -> int:
    """The same, character by character (reference form; any characters)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def _require_digits(value: object, field: str, error: type[InputError]) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise error(f"{field} must be a string of decimal digits, got {describe(value)}", field=field)
    return value


def check_drn(drn: object, *, field: str = "drn") -> str:
    """A valid 11- or 13-digit DRN, or InvalidDrn naming the rule."""
    text = _require_digits(drn, field, InvalidDrn)
    if len(text) not in (11, 13):
        raise InvalidDrn(f"{field} must have 11 or 13 digits, got {len(text)}", field=field)
    expected = luhn_check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise InvalidDrn(
            f"{field} {text} fails its Luhn check digit (expected {expected}, got {text[-1]})",
            field=field,
        )
    return text


@dataclass(frozen=True, slots=True)
class MeterPan:
    iin: str
    drn: str

    @property
    def mfr_code(self) -> str:
        return self.drn[: len(self.drn) - 9]

    @property
    def pan(self) -> str:
        body = self.iin + self.drn
        return body + str(luhn_check_digit(body))

    def __str__(self) -> str:
        return self.pan

    @classmethod
    def from_drn(cls, drn: str) -> MeterPan:
        text = check_drn(drn)
        return cls(_IIN_FOR_DRN_LEN[len(text)], text)


def parse_pan(pan: object, *, field: str = "pan") -> MeterPan:
    """Validate an 18-digit MeterPAN; the error names which rule failed."""
    text = _require_digits(pan, field, InvalidPan)
    if len(text) != 18:
        raise InvalidPan(f"{field} must have 18 digits, got {len(text)}", field=field)
    if text.startswith(IIN_STS):
        iin = IIN_STS
    elif text.startswith(IIN_SHORT):
        iin = IIN_SHORT
    else:
        raise InvalidPan(
            f"{field} {text} must start with IIN 600727 (11-digit DRN) or 0000 (13-digit DRN)",
            field=field,
        )
    expected = luhn_check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise InvalidPan(
            f"{field} {text} fails its Luhn check digit (expected {expected}, got {text[-1]})",
            field=field,
        )
    drn = text[len(iin) : -1]
    try:
        check_drn(drn)
    except InvalidDrn as exc:
        raise InvalidPan(f"{field} {text}: {exc.message}", field=field) from None
    return MeterPan(iin, drn)


def printed_number(pan: str) -> str:
    """The number printed on the meter (its DRN) for a MeterPAN; text that is not a valid
    MeterPAN comes back as written (a log line or an old record may hold what was typed)."""
    try:
        return parse_pan(pan).drn
    except InputError:
        return pan


METER_NUMBER_MAX_CHARS = 40
_GROUPED_DIGITS = re.compile(r"[0-9]+(?:[ -]+[0-9]+)*")
_RE_READ = "the check digit is wrong: please re-read the meter number"


def parse_meter_number(value: object, *, field: str = "meter") -> MeterPan:
    """The meter a person names: the number printed on it or its MeterPAN.

    11 digits are a DRN under IIN 600727, 13 digits a DRN under IIN 0000, 18 digits the full
    MeterPAN; ASCII spaces or dashes may separate groups of digits.  Every check digit is
    verified.  InvalidMeterNumber says which rule failed, so a cashier can tell a mistyped
    number (re-read it) from one written in other digits or of the wrong length.
    """
    if not isinstance(value, str):
        raise InvalidMeterNumber(
            f"{field} must be the meter number as a string of digits (11 or 13 digits as "
            f"printed on the meter, or the 18-digit MeterPAN), got {describe(value)}",
            field=field,
        )
    text = value.strip(" ")
    if len(text) > METER_NUMBER_MAX_CHARS:
        raise InvalidMeterNumber(
            f"{field} is too long for a meter number ({len(text)} characters)", field=field
        )
    if not _GROUPED_DIGITS.fullmatch(text):
        if any(ch.isdigit() and not ch.isascii() for ch in text):
            odd = next(ch for ch in text if ch.isdigit() and not ch.isascii())
            raise InvalidMeterNumber(
                f"{field} must be written with the ASCII digits 0-9; found "
                f"{unicodedata.name(odd, 'a non-ASCII digit').lower()} {odd!r}",
                field=field,
            )
        raise InvalidMeterNumber(
            f"{field} may contain only the digits 0-9, with spaces or dashes between groups, "
            f"got {describe(value)}",
            field=field,
        )
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) == 18:
        iin = next((i for i in (IIN_STS, IIN_SHORT) if digits.startswith(i)), None)
        if iin is None:
            raise InvalidMeterNumber(
                f"{field} {digits} is not a MeterPAN: 18 digits must start with IIN 600727 or "
                "0000 (or give the 11- or 13-digit number printed on the meter)",
                field=field,
            )
        drn = digits[len(iin) : -1]
        ok = luhn_check_digit(digits[:-1]) == int(digits[-1])
    elif len(digits) in _IIN_FOR_DRN_LEN:
        iin, drn, ok = _IIN_FOR_DRN_LEN[len(digits)], digits, True
    else:
        raise InvalidMeterNumber(
            f"{field} must have 11 or 13 digits (the number printed on the meter) or 18 (the "
            f"MeterPAN), got {len(digits)}",
            field=field,
        )
    if not ok or luhn_check_digit(drn[:-1]) != int(drn[-1]):
        raise InvalidMeterNumber(f"{field} {digits}: {_RE_READ}", field=field)
    return MeterPan(iin, drn)


def pan_block(pan: MeterPan, kt: int) -> int:
    """PANBlock: the IIN's rightmost digits then the DRN, 16 digits read as hex nibbles.

    For a common key (KT 3) the DRN digits are zeroed, since one key serves many meters.
    """
    drn = "0" * len(pan.drn) if kt == 3 else pan.drn
    digits = (pan.iin + drn)[-16:]
    return int(digits, 16)


def control_block(kt: int, sgc: str, ti: int, krn: int) -> int:
    """CONTROLBlock: KT(1) SGC(6) TI(2) KRN(1) FFFFFF, decimal digits read as hex nibbles."""
    return int(f"{kt:01d}{sgc}{ti:02d}{krn:01d}FFFFFF", 16)
