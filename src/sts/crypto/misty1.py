"""EA11: MISTY1 (RFC 2994), 64-bit block, 128-bit key, 8 rounds.

STS feeds the 64-bit data block most significant byte first and uses the 16 DKGA04 output
bytes in order as the key (spec digest §6.3).  The S-boxes are data (RFC 2994 tables).

Two forms, held byte-identical by tests/crypto/test_misty1_forms.py:

- the reference (`_fi`, `_fo`, `_fl`, `reference_encrypt`/`reference_decrypt`), written as
  RFC 2994 describes the cipher;
- the table form (`encrypt`/`decrypt`, and `sts.crypto.misty1_batch` over numpy arrays).
  FI(x, k) splits into two 16-bit lookups: everything before the subkey enters depends on x
  alone, the subkey XORs straight into the packed (d7, d9) pair, and everything after it
  depends on that pair alone, so FI(x, k) = FI_OUT[FI_IN[x] ^ k].  A round is then a handful
  of lookups and XORs on 16-bit halves.
"""

from __future__ import annotations

import json
from array import array
from functools import cache, lru_cache
from importlib import resources
from operator import itemgetter
from typing import TYPE_CHECKING

from sts.crypto.native import native

if TYPE_CHECKING:
    from sts.crypto._native import Misty1

_BOXES = json.loads(
    resources.files("sts.crypto").joinpath("data/misty1-sboxes.json").read_text()
)
S7: tuple[int, ...] = tuple(_BOXES["s7"])
S9: tuple[int, ...] = tuple(_BOXES["s9"])


# --- reference form ---------------------------------------------------------------------------


def _fi(value: int, subkey: int) -> int:
    d9 = value >> 7
    d7 = value & 0x7F
    d9 = S9[d9] ^ d7
    d7 = (S7[d7] ^ d9) & 0x7F
    d7 ^= subkey >> 9
    d9 ^= subkey & 0x1FF
    d9 = S9[d9] ^ d7
    return (d7 << 9) | d9


@lru_cache(maxsize=4096)
def expand_key(key: bytes) -> tuple[int, ...]:
    """EK[0..15]: the eight key words K and the eight K' = FI(K[i], K[i+1])."""
    if len(key) != 16:
        raise ValueError("MISTY1 needs a 16-byte key")
    k = [int.from_bytes(key[2 * i : 2 * i + 2], "big") for i in range(8)]
    return tuple(k + [_fi(k[i], k[(i + 1) % 8]) for i in range(8)])


def _fo(value: int, r: int, ek: tuple[int, ...]) -> int:
    t0 = value >> 16
    t1 = value & 0xFFFF
    t0 = _fi(t0 ^ ek[r], ek[(r + 5) % 8 + 8]) ^ t1
    t1 = _fi(t1 ^ ek[(r + 2) % 8], ek[(r + 1) % 8 + 8]) ^ t0
    t0 = _fi(t0 ^ ek[(r + 7) % 8], ek[(r + 3) % 8 + 8]) ^ t1
    t1 ^= ek[(r + 4) % 8]
    return (t1 << 16) | t0


def _fl_keys(k: int, ek: tuple[int, ...]) -> tuple[int, int]:
    """(AND subkey, OR subkey) of FL layer k."""
    h = k // 2
    if k % 2 == 0:
        return ek[h], ek[(h + 6) % 8 + 8]
    return ek[(h + 2) % 8 + 8], ek[(h + 4) % 8]


def _fl(value: int, k: int, ek: tuple[int, ...]) -> int:
    a, o = _fl_keys(k, ek)
    d0, d1 = value >> 16, value & 0xFFFF
    d1 ^= d0 & a
    d0 ^= d1 | o
    return (d0 << 16) | d1


def _fl_inv(value: int, k: int, ek: tuple[int, ...]) -> int:
    a, o = _fl_keys(k, ek)
    d0, d1 = value >> 16, value & 0xFFFF
    d0 ^= d1 | o
    d1 ^= d0 & a
    return (d0 << 16) | d1


def reference_encrypt(key: bytes, block: int) -> int:
    ek = expand_key(key)
    d0, d1 = block >> 32, block & 0xFFFFFFFF
    for i in range(0, 8, 2):
        d0 = _fl(d0, i, ek)
        d1 = _fl(d1, i + 1, ek)
        d1 ^= _fo(d0, i, ek)
        d0 ^= _fo(d1, i + 1, ek)
    d0 = _fl(d0, 8, ek)
    d1 = _fl(d1, 9, ek)
    return (d1 << 32) | d0


def reference_decrypt(key: bytes, block: int) -> int:
    ek = expand_key(key)
    d1, d0 = block >> 32, block & 0xFFFFFFFF
    d0 = _fl_inv(d0, 8, ek)
    d1 = _fl_inv(d1, 9, ek)
    for i in range(6, -1, -2):
        d0 ^= _fo(d1, i + 1, ek)
        d1 ^= _fo(d0, i, ek)
        d0 = _fl_inv(d0, i, ek)
        d1 = _fl_inv(d1, i + 1, ek)
    return (d0 << 32) | d1


# --- table form -------------------------------------------------------------------------------


@cache
def fi_tables() -> tuple[array[int], array[int]]:
    """(FI_IN, FI_OUT): FI(x, k) == FI_OUT[FI_IN[x] ^ k] (built on first use, a few ms).

    FI_IN[x] is (d7 << 9) | d9 after the first S9 and the S7 step of x = (x9 << 7) | x7;
    FI_OUT[y] is the keyed pair (d7, d9) = (y >> 9, y & 0x1FF) through the last S9 step.
    Kept as 16-bit arrays (128 KB each): a list of int objects is ~2.5 MB, which falls out
    of the CPU caches and makes every lookup slower.
    """
    s7, s9 = S7, S9
    fi_in = array("H", [(((s7[x7] ^ d9) & 0x7F) << 9) | d9
                        for s in s9 for x7 in range(128) for d9 in (s ^ x7,)])
    fi_out = array("H", [(d7 << 9) | (s ^ d7) for d7 in range(128) for s in s9])
    return fi_in, fi_out


# EK word indices: per FO round r, (in-key, FI key) x 3 and the out-key; per FL layer k, the
# (AND key, OR key) pair
FO_WORDS = tuple(
    (r, (r + 5) % 8 + 8, (r + 2) % 8, (r + 1) % 8 + 8, (r + 7) % 8, (r + 3) % 8 + 8, (r + 4) % 8)
    for r in range(8)
)
FL_PAIRS = tuple(
    (k // 2, (k // 2 + 6) % 8 + 8) if k % 2 == 0 else ((k // 2 + 2) % 8 + 8, (k // 2 + 4) % 8)
    for k in range(10)
)
_FO_GET = tuple(itemgetter(*words) for words in FO_WORDS)
_FL_GET = itemgetter(*(i for pair in FL_PAIRS for i in pair))

Schedule = tuple[list[tuple[int, ...]], tuple[int, ...]]


@lru_cache(maxsize=4096)
def schedule(key: bytes) -> Schedule:
    """Per FO round its seven subkeys; the twenty FL subkeys (a meter's key, made once)."""
    if len(key) != 16:
        raise ValueError("MISTY1 needs a 16-byte key")
    fin, fout = fi_tables()
    k = [(key[2 * i] << 8) | key[2 * i + 1] for i in range(8)]
    ek = k + [fout[fin[k[i]] ^ k[(i + 1) & 7]] for i in range(8)]
    return [g(ek) for g in _FO_GET], _FL_GET(ek)


_MASK64 = (1 << 64) - 1


_compiled: list[Misty1] = []


def compiled() -> Misty1 | None:
    """The cipher in the compiled core (FI tables built there from S7 and S9), or None when
    the core is not in use."""
    core = native()
    if core is None:
        return None
    if not _compiled:
        _compiled.append(core.Misty1(array("H", S7), array("H", S9)))
    return _compiled[0]


def encrypt(key: bytes, block: int) -> int:
    """EA11 encryption of a 64-bit block: the compiled core when built, else `encrypt_py`.
    Arguments that are not its plain form go to the Python form, which says what is wrong."""
    c = compiled()
    if c is not None and len(key) == 16 and 0 <= block <= _MASK64:
        return c.encrypt(key, block)
    return encrypt_py(key, block)


def decrypt(key: bytes, block: int) -> int:
    c = compiled()
    if c is not None and len(key) == 16 and 0 <= block <= _MASK64:
        return c.decrypt(key, block)
    return decrypt_py(key, block)


def encrypt_py(key: bytes, block: int) -> int:
    """The table form in Python (the fallback, and the compiled core's reference)."""
    fo, fl = schedule(key)
    fin, fout = fi_tables()
    a, b = block >> 48, (block >> 32) & 0xFFFF  # d0 (high, low)
    c, d = (block >> 16) & 0xFFFF, block & 0xFFFF  # d1
    for i in (0, 2, 4, 6):
        ka, ko = fl[2 * i], fl[2 * i + 1]
        b ^= a & ka
        a ^= b | ko
        ka, ko = fl[2 * i + 2], fl[2 * i + 3]
        d ^= c & ka
        c ^= d | ko
        k0, k1, k2, k3, k4, k5, k6 = fo[i]
        t0 = fout[fin[a ^ k0] ^ k1] ^ b
        t1 = fout[fin[b ^ k2] ^ k3] ^ t0
        t0 = fout[fin[t0 ^ k4] ^ k5] ^ t1
        c ^= t1 ^ k6
        d ^= t0
        k0, k1, k2, k3, k4, k5, k6 = fo[i + 1]
        t0 = fout[fin[c ^ k0] ^ k1] ^ d
        t1 = fout[fin[d ^ k2] ^ k3] ^ t0
        t0 = fout[fin[t0 ^ k4] ^ k5] ^ t1
        a ^= t1 ^ k6
        b ^= t0
    ka, ko = fl[16], fl[17]
    b ^= a & ka
    a ^= b | ko
    ka, ko = fl[18], fl[19]
    d ^= c & ka
    c ^= d | ko
    return (c << 48) | (d << 32) | (a << 16) | b


def decrypt_py(key: bytes, block: int) -> int:
    fo, fl = schedule(key)
    fin, fout = fi_tables()
    c, d = block >> 48, (block >> 32) & 0xFFFF  # d1
    a, b = (block >> 16) & 0xFFFF, block & 0xFFFF  # d0
    ka, ko = fl[16], fl[17]
    a ^= b | ko
    b ^= a & ka
    ka, ko = fl[18], fl[19]
    c ^= d | ko
    d ^= c & ka
    for i in (6, 4, 2, 0):
        k0, k1, k2, k3, k4, k5, k6 = fo[i + 1]
        t0 = fout[fin[c ^ k0] ^ k1] ^ d
        t1 = fout[fin[d ^ k2] ^ k3] ^ t0
        t0 = fout[fin[t0 ^ k4] ^ k5] ^ t1
        a ^= t1 ^ k6
        b ^= t0
        k0, k1, k2, k3, k4, k5, k6 = fo[i]
        t0 = fout[fin[a ^ k0] ^ k1] ^ b
        t1 = fout[fin[b ^ k2] ^ k3] ^ t0
        t0 = fout[fin[t0 ^ k4] ^ k5] ^ t1
        c ^= t1 ^ k6
        d ^= t0
        ka, ko = fl[2 * i], fl[2 * i + 1]
        a ^= b | ko
        b ^= a & ka
        ka, ko = fl[2 * i + 2], fl[2 * i + 3]
        c ^= d | ko
        d ^= c & ka
    return (a << 48) | (b << 32) | (c << 16) | d
