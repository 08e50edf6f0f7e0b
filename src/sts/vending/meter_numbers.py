"""The meter numbers a customer or POS may quote: the 11- or 13-digit DRN printed on the meter,
or the 18-digit MeterPAN.  Both Luhn digits are checked; the result is the MeterPAN the
registry is keyed on."""

from __future__ import annotations

from sts.codec.pan import MeterPan, check_drn, parse_pan


def pan_from_number(text: str, *, field: str = "meterId") -> str:
    """The MeterPAN for a DRN (11/13 digits) or a MeterPAN (18 digits)."""
    digits = text.strip()
    if len(digits) in (11, 13):
        return MeterPan.from_drn(check_drn(digits, field=field)).pan
    return parse_pan(digits, field=field).pan
