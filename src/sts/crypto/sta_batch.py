"""EA07 over many blocks at once (numpy), each block under its own key.

The same per-byte tables as `sta.Sta`, as uint64 arrays: a round gathers, for every block and
every state byte, the table entry at (byte position, two selector bits, byte value) and ORs
the eight entries.  A vending campaign or a batch of 100,000 lines thus costs a few hundred
array operations instead of millions of interpreter steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sts.crypto.sta import ROUNDS, Sta

U64 = np.uint64
_SEL_LOW = U64(0x0101010101010101)
_SEL_HIGH = U64(0x0202020202020202)
_J4 = (np.arange(8, dtype=np.uint8) * 4)[None, :, None]
_ROUND_SHIFTS = np.arange(ROUNDS, dtype=U64)[:, None]


def _u64(values: Any) -> Any:
    if len(values) and np.ndim(values) != 1:
        raise ValueError("expected a 1-d array of 64-bit values")
    return np.ascontiguousarray(values, dtype=U64)


class StaBatch:
    def __init__(self, sta: Sta) -> None:
        self.sta = sta
        self.enc = np.array(sta.enc, dtype=U64)
        self.dec = np.array(sta.dec, dtype=U64)
        self.sub_inv = np.array(sta.sub_inv, dtype=U64)
        self.pinv = np.array(sta.pinv, dtype=U64)

    @staticmethod
    def _selectors(keys: Any) -> Any:
        """(rounds, 8, n) int32 table offsets j*1024 + sel*256: per round, byte j of every
        block in one contiguous row, so a round's gathers and ORs run along rows."""
        k = ~np.asarray(keys, dtype=U64)
        k = ((k >> U64(12)) | (k << U64(52)))[None, :]
        r = _ROUND_SHIFTS
        kr = (k << r) | (k >> ((U64(64) - r) & U64(63)))  # round 0: k | k
        sel = ((kr >> U64(3)) & _SEL_LOW) | ((kr >> U64(6)) & _SEL_HIGH)
        # (sel + 4j) << 8 == j*1024 + sel*256: add in bytes, widen once while shifting
        table_rows = sel.view(np.uint8).reshape(ROUNDS, -1, 8).transpose(0, 2, 1) + _J4
        return np.left_shift(table_rows, 8, dtype=np.int32)

    @staticmethod
    def _apply(table: Any, offsets: Any, x: Any) -> Any:
        g = table.take(offsets + x.view(np.uint8).reshape(-1, 8).T)
        return g[0] | g[1] | g[2] | g[3] | g[4] | g[5] | g[6] | g[7]

    def encrypt(self, keys: Any, blocks: Any) -> Any:
        """uint64 ciphertexts of uint64 `blocks` under uint64 `keys` (same length): the
        compiled core when built, else the numpy form (same result)."""
        c = self.sta.compiled()
        if c is None:
            return self.encrypt_numpy(keys, blocks)
        k, x = _u64(keys), _u64(blocks)
        out = np.empty(len(x), dtype=U64)
        c.encrypt_many(k, x, out)  # the core checks the three lengths agree
        return out

    def decrypt(self, keys: Any, blocks: Any) -> Any:
        c = self.sta.compiled()
        if c is None:
            return self.decrypt_numpy(keys, blocks)
        k, x = _u64(keys), _u64(blocks)
        out = np.empty(len(x), dtype=U64)
        c.decrypt_many(k, x, out)
        return out

    def encrypt_numpy(self, keys: Any, blocks: Any) -> Any:
        x = np.ascontiguousarray(blocks, dtype=U64)
        if not len(x):
            return x
        for offsets in self._selectors(keys):
            x = self._apply(self.enc, offsets, x)
        return x

    def decrypt_numpy(self, keys: Any, blocks: Any) -> Any:
        x = np.ascontiguousarray(blocks, dtype=U64)
        if not len(x):
            return x
        sels = self._selectors(keys)
        idx = x.view(np.uint8).reshape(-1, 8).T + (np.arange(8, dtype=np.int32) * 256)[:, None]
        g = self.pinv.take(idx)
        x = g[0] | g[1] | g[2] | g[3] | g[4] | g[5] | g[6] | g[7]
        for r in range(ROUNDS - 1, 0, -1):
            x = self._apply(self.dec, sels[r], x)
        return self._apply(self.sub_inv, sels[0], x)


def batch_cipher(sta: Sta) -> StaBatch:
    """The numpy form of a cipher, kept on the cipher itself (lives and dies with it)."""
    if sta.batch is None:
        sta.batch = StaBatch(sta)
    found: StaBatch = sta.batch
    return found
