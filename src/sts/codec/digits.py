"""Class-bit transposition and the 20-digit token text (spec digest §5)."""

from __future__ import annotations

from sts.codec.describe import describe
from sts.errors import TokenFormatError

TOKEN_DIGITS = 20
TOKEN_LIMIT = 1 << 66
_MASK_27_28 = (1 << 28) | (1 << 27)
_SEPARATORS = str.maketrans("", "", " -\t")


def insert_class(block: int, token_class: int) -> int:
    """66-bit token number: class bits into block bits 28..27, displaced bits to 65..64."""
    moved = (block >> 27) & 3
    return (moved << 64) | (block & ~_MASK_27_28 & 0xFFFFFFFFFFFFFFFF) | (token_class << 27)


def extract_class(number: int) -> tuple[int, int]:
    """(class, 64-bit block) from a 66-bit token number."""
    token_class = (number >> 27) & 3
    block = (number & 0xFFFFFFFFFFFFFFFF & ~_MASK_27_28) | ((number >> 64) << 27)
    return token_class, block


def to_digits(number: int) -> str:
    return f"{number:020d}"


def group(token: str | None, size: int = 4, sep: str = " ") -> str:
    """'1234 5678 ...' for display (slips, pages, messages, a meter's keypad echo); scripts
    should use the plain digits.  Nothing to show (None) is ""."""
    text = token or ""
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


def parse_token(text: object, *, field: str = "token") -> int:
    """The 66-bit number of a token typed by a person: spaces and dashes are allowed."""
    if not isinstance(text, str):
        raise TokenFormatError(f"{field} must be a string of 20 digits, got {describe(text)}",
                               field=field)
    if len(text) > 4 * TOKEN_DIGITS:
        raise TokenFormatError(f"{field} must have 20 digits, got {describe(text)}", field=field)
    compact = text.strip().translate(_SEPARATORS)
    plain = compact.isascii() and compact.isdigit()  # the common case, checked in C
    bad = [] if plain else sorted({c for c in compact if not ("0" <= c <= "9")})
    if bad:
        shown = "".join(bad[:5])
        raise TokenFormatError(
            f"{field} may contain only digits, spaces and dashes; found {shown!r}", field=field
        )
    if len(compact) != TOKEN_DIGITS:
        raise TokenFormatError(
            f"{field} must have 20 digits, got {len(compact)}", field=field
        )
    return check_token_number(int(compact), field=field)


def check_token_number(number: object, *, field: str = "token") -> int:
    """A token given as its 66-bit number (Python API): an int 0 .. 2^66-1, never a bool."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise TokenFormatError(f"{field} must be a string of 20 digits, got {describe(number)}",
                               field=field)
    if not 0 <= number < TOKEN_LIMIT:
        shown = f"{number:020d}" if number.bit_length() <= 128 else describe(number)
        raise TokenFormatError(
            f"{field} {shown} is outside the 66-bit token range (0..{TOKEN_LIMIT - 1})",
            field=field,
        )
    return number
