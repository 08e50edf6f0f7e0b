"""Short, safe descriptions of a received value for error messages.

A message names what was received without echoing unbounded input: a 5,000-digit integer or a
1 MB string is described by its size, never printed (and never converted with `str`, which
Python limits for huge integers).
"""

from __future__ import annotations

from decimal import Decimal

_SHOWN = 40


def describe(value: object) -> str:
    """'null', 'a boolean (true)', 'a number (10.05)', 'a list', "the text '1_000'", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        bits = value.bit_length()
        if bits > 128:
            return f"a number of about {int(bits * 0.30103) + 1} digits"
        return f"a number ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, Decimal):
        text = str(value)
        return f"the decimal {text if len(text) <= _SHOWN else text[:_SHOWN] + '...'}"
    if isinstance(value, str):
        if len(value) <= _SHOWN:
            return f"the text {value!r}"
        return f"a text of {len(value)} characters starting {value[:20]!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a value of type {type(value).__name__}"
