"""EA11 (MISTY1) over many blocks at once, each block under its own key: one call of the compiled
core (`sts.crypto.native`) when built, else numpy.

The table form of `sts.crypto.misty1` on arrays: FI(x, k) = FI_OUT[FI_IN[x] ^ k] with the two
64K tables as uint16 arrays, and the 64-bit blocks held as four uint16 columns.  A chunk of
4,096 lines costs ~170 array operations instead of ~500,000 interpreter steps.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from sts.crypto.misty1 import FL_PAIRS, FO_WORDS, compiled, fi_tables

U16 = np.uint16


@cache
def _tables() -> tuple[Any, Any]:
    fin, fout = fi_tables()
    return np.frombuffer(fin, dtype=U16).copy(), np.frombuffer(fout, dtype=U16).copy()


def crypt(keys: Any, blocks: Any, *, decrypt: bool) -> Any:
    """uint64 results for uint64 `blocks` under (n, 16) uint8 `keys`: the compiled core when
    built, else the numpy form (same result)."""
    c = compiled()
    if c is None:
        ek = expand_keys(keys)
        return decrypt_numpy(ek, blocks) if decrypt else encrypt_numpy(ek, blocks)
    k = np.ascontiguousarray(keys, dtype=np.uint8)
    x = np.ascontiguousarray(blocks, dtype=np.uint64)
    if k.shape != (len(x), 16):
        raise ValueError("MISTY1 needs one 16-byte key per block")
    out = np.empty(len(x), dtype=np.uint64)
    c.crypt_many(k, x, out, decrypt)
    return out


def expand_keys(keys: Any) -> Any:
    """(16, n) uint16 EK words of n 16-byte keys given as an (n, 16) uint8 array."""
    fin, fout = _tables()
    k = np.ascontiguousarray(keys, dtype=np.uint8).view(">u2").astype(U16).T  # (8, n)
    ek = np.empty((16, k.shape[1]), dtype=U16)
    ek[:8] = k
    ek[8:] = fout[fin[k] ^ np.roll(k, -1, axis=0)]
    return ek


def _fo(fin: Any, fout: Any, ek: Any, r: int, hi: Any, lo: Any) -> tuple[Any, Any]:
    w = FO_WORDS[r]
    t0 = fout[fin[hi ^ ek[w[0]]] ^ ek[w[1]]] ^ lo
    t1 = fout[fin[lo ^ ek[w[2]]] ^ ek[w[3]]] ^ t0
    t0 = fout[fin[t0 ^ ek[w[4]]] ^ ek[w[5]]] ^ t1
    return t1 ^ ek[w[6]], t0


def _split(blocks: Any) -> list[Any]:
    """Four uint16 columns (most significant first) of a uint64 array."""
    halves = np.ascontiguousarray(blocks, dtype=np.uint64).astype(">u8").view(">u2")
    q = halves.reshape(-1, 4).astype(U16)
    return [np.ascontiguousarray(q[:, j]) for j in range(4)]


def _join(a: Any, b: Any, c: Any, d: Any) -> Any:
    u = np.uint64
    return ((a.astype(u) << u(48)) | (b.astype(u) << u(32)) | (c.astype(u) << u(16))
            | d.astype(u))


def encrypt_numpy(ek: Any, blocks: Any) -> Any:
    """uint64 ciphertexts of uint64 `blocks` under the expanded keys `ek` (same length)."""
    if not len(blocks):
        return np.asarray(blocks, dtype=np.uint64)
    fin, fout = _tables()
    a, b, c, d = _split(blocks)
    for i in (0, 2, 4, 6):
        ka, ko = FL_PAIRS[i]
        b ^= a & ek[ka]
        a ^= b | ek[ko]
        ka, ko = FL_PAIRS[i + 1]
        d ^= c & ek[ka]
        c ^= d | ek[ko]
        x, y = _fo(fin, fout, ek, i, a, b)
        c ^= x
        d ^= y
        x, y = _fo(fin, fout, ek, i + 1, c, d)
        a ^= x
        b ^= y
    ka, ko = FL_PAIRS[8]
    b ^= a & ek[ka]
    a ^= b | ek[ko]
    ka, ko = FL_PAIRS[9]
    d ^= c & ek[ka]
    c ^= d | ek[ko]
    return _join(c, d, a, b)


def decrypt_numpy(ek: Any, blocks: Any) -> Any:
    if not len(blocks):
        return np.asarray(blocks, dtype=np.uint64)
    fin, fout = _tables()
    c, d, a, b = _split(blocks)
    ka, ko = FL_PAIRS[8]
    a ^= b | ek[ko]
    b ^= a & ek[ka]
    ka, ko = FL_PAIRS[9]
    c ^= d | ek[ko]
    d ^= c & ek[ka]
    for i in (6, 4, 2, 0):
        x, y = _fo(fin, fout, ek, i + 1, c, d)
        a ^= x
        b ^= y
        x, y = _fo(fin, fout, ek, i, a, b)
        c ^= x
        d ^= y
        ka, ko = FL_PAIRS[i]
        a ^= b | ek[ko]
        b ^= a & ek[ka]
        ka, ko = FL_PAIRS[i + 1]
        c ^= d | ek[ko]
        d ^= c & ek[ka]
    return _join(a, b, c, d)
