"""EA11: MISTY1 (RFC 2994), 64-bit block, 128-bit key, 8 rounds.

STS feeds the 64-bit data block most significant byte first and uses the 16 DKGA04 output
bytes in order as the key (spec digest §6.3).  The S-boxes are data (RFC 2994 tables).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

_BOXES = json.loads(
    resources.files("sts.crypto").joinpath("data/misty1-sboxes.json").read_text()
)
S7: tuple[int, ...] = tuple(_BOXES["s7"])
S9: tuple[int, ...] = tuple(_BOXES["s9"])


def _fi(value: int, subkey: int) -> int:
    d9 = value >> 7
    d7 = value & 0x7F
    d9 = S9[d9] ^ d7
    d7 = (S7[d7] ^ d9) & 0x7F
    d7 ^= subkey >> 9
    d9 ^= subkey & 0x1FF
    d9 = S9[d9] ^ d7
    return (d7 << 9) | d9


@cache
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


def encrypt(key: bytes, block: int) -> int:
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


def decrypt(key: bytes, block: int) -> int:
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
