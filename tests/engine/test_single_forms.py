"""Shortcuts of the single-call path against the general code they stand for.

HMAC-SHA-256 from precomputed pads vs `hmac.digest`; the byte-summed Luhn digit vs the
character loop; plain decimal units without Decimal vs the Decimal path; reused DES contexts
vs fresh ones; the buffered RND nibbles.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import warnings
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from sts.codec import amount as amt
from sts.codec.layouts import layout_for
from sts.codec.pan import _luhn_slow, luhn_check_digit
from sts.codec.tid import TID_MAX
from sts.crypto import des
from sts.crypto.dkga import _hmac_sha256
from sts.engine.core import credit_block, random_nibble
from sts.errors import AmountOutOfRange, InvalidAmount, StsError


def test_hmac_from_pads_equals_hmac_digest() -> None:
    rng = random.Random(9)
    for _ in range(500):
        key = rng.randbytes(rng.randrange(16, 65))
        msg = rng.randbytes(rng.randrange(0, 200))
        assert _hmac_sha256(key, msg) == hmac.digest(key, msg, hashlib.sha256)


@given(st.text(alphabet="0123456789", max_size=30))
def test_luhn_fast_equals_loop(digits: str) -> None:
    assert luhn_check_digit(digits) == _luhn_slow(digits)


def test_luhn_other_characters_take_the_loop() -> None:
    assert luhn_check_digit("12a4") == _luhn_slow("12a4")
    assert luhn_check_digit("١٢٣") == _luhn_slow("١٢٣")  # non-ASCII digits


def _tenths_by_decimal(text: str) -> int:
    value = amt.parse_amount_text(text, field="units", signed=True)
    if value < 0:
        raise AmountOutOfRange("negative", field="units")
    tenths = int((value * 10).to_integral_value(rounding="ROUND_CEILING"))
    if tenths > amt.TRANSFER_MAX:
        raise AmountOutOfRange("too big", field="units")
    return tenths


@given(st.one_of(
    st.from_regex(r"\A[0-9]{1,9}(\.[0-9]{0,5})?\Z"),
    st.sampled_from(["0", "0.0", "0.05", "1820162.4", "1820162.41", "1820162.5", "007.10",
                     "12.", ".5", "-1", "+1", " 1", "1e3", "1_0", "１２", "NaN", "", "."]),
))
def test_plain_units_equal_decimal_path(text: str) -> None:
    try:
        want: int | str = _tenths_by_decimal(text)
    except (AmountOutOfRange, InvalidAmount) as exc:
        want = exc.code
    try:
        got: int | str = amt.units_to_tenths(text)
    except (AmountOutOfRange, InvalidAmount) as exc:
        got = exc.code
    assert got == want
    plain = amt.plain_tenths(text)
    if plain is not None:
        assert Decimal(text) * 10 <= plain < Decimal(text) * 10 + 1


def test_reused_des_contexts_equal_fresh_ones() -> None:
    rng = random.Random(4)
    keys = [rng.randbytes(8) for _ in range(5)]
    for _ in range(300):
        key = rng.choice(keys)
        data = rng.randbytes(8 * rng.randrange(1, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fresh = Cipher(TripleDES(key * 3), modes.ECB())
        want = fresh.encryptor().update(data)
        assert des.encrypt_blocks(key, data) == want
        assert des.decrypt_blocks(key, want) == data
    with pytest.raises(ValueError):
        des.encrypt_blocks(keys[0], b"1234567")  # a partial block would poison the context


def test_credit_block_equals_layout_pack() -> None:
    rng = random.Random(12)
    units = ["0", "0.1", "0.05", "1.25", "16383", "16383.1", "180223.9", "1820162.4",
             "1820162.5", "9999999", "12.", ".5", "-1", "1e3", " 5", "7.000", "abc"]
    for _ in range(3000):
        sub = rng.randrange(4)
        fields: dict[str, Any] = {
            "units": rng.choice([*units, f"{rng.randrange(2_000_000)}.{rng.randrange(100)}",
                                 rng.randrange(100), Decimal("1.5")]),
            "tid": rng.choice([0, TID_MAX, TID_MAX + 1, -1, rng.randrange(TID_MAX), True, 5.0]),
            "rnd": rng.choice([0, 15, 16, -1, rng.randrange(16), True, None]),
        }
        fast = credit_block(sub, fields)
        try:
            want: int | str = layout_for(0, sub).pack(fields)
        except StsError as exc:
            want = exc.code
        if fast is not None:
            assert fast == want, fields
        # the shortcut declines everything it cannot do exactly
        if isinstance(want, str):
            assert fast is None


def test_random_nibbles_cover_the_range() -> None:
    seen = [random_nibble() for _ in range(2000)]
    assert set(seen) == set(range(16))
    assert max(seen.count(v) for v in range(16)) < 250  # ~125 each


def test_fast_constructors_equal_the_dataclass_ones() -> None:
    """`MeterKey.derive`, `TokenRequest(...)` and the issued tokens skip the frozen dataclass
    __init__ for speed: the objects must be the ones the generated constructors make, with every
    field set, the same checks, and still frozen."""
    import dataclasses

    from sts.codec.pan import parse_pan
    from sts.engine import MeterKey, TokenRequest, generate
    from sts.engine.model import Issue, IssuedToken
    from sts.errors import InputError

    pan = parse_pan("600727000000000009")
    args: dict[str, Any] = dict(dkga=4, vending_key=bytes(range(16)), pan=pan, kt=2,
                                sgc="123456", ti=1, krn=1, ea=11, base_date=2014)
    key = MeterKey.derive(**args)
    names = {f.name for f in dataclasses.fields(MeterKey)}
    assert set(vars(key)) == names
    plain = MeterKey(ea=11, decoder_key=key.decoder_key, base_date=2014, kt=2, krn=1, ti=1,
                     sgc="123456", pan=pan, dkga=4, vending_key=bytes(range(16)))
    assert key == plain and hash(key) == hash(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.ken = 1  # type: ignore[misc]
    with pytest.raises(InputError, match="ea must be"):  # the constructor's checks still run
        MeterKey.derive(**{**args, "ea": 5})

    request = TokenRequest(0, 0, {"units": "1"}, tid=7)
    assert set(vars(request)) == {f.name for f in dataclasses.fields(TokenRequest)}
    assert TokenRequest(1, 0).values == {} and TokenRequest(1, 0).values is not \
        TokenRequest(1, 0).values
    assert dataclasses.replace(request, tid=8).tid == 8 and request.tid == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.tid = 9  # type: ignore[misc]

    issue = generate(key, request)
    token = issue.tokens[0]
    assert set(vars(token)) == {f.name for f in dataclasses.fields(IssuedToken)}
    assert set(vars(issue)) == {f.name for f in dataclasses.fields(Issue)}
    assert token == IssuedToken(token.token, 0, 0, token.block, 7, token.description)
    assert issue == Issue((token,), 7)


@given(st.integers(0, amt.TRANSFER_MAX))
def test_transfer_field_exponent_zero_shortcut(value: int) -> None:
    """The exponent-0 shortcut of encode_transfer equals the general rule."""
    field = amt.encode_transfer(value)
    exponent, mantissa = field >> 14, field & 0x3FFF
    decoded = mantissa * 10**exponent + (0, 16384, 180224, 1818624)[exponent]
    assert decoded >= value and (exponent > 0 or decoded == value)
    if value < 16384:
        assert field == value
