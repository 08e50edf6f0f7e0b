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
_BYTE_BASE = (np.arange(8, dtype=np.int32) * 1024)[None, :]


class StaBatch:
    def __init__(self, sta: Sta) -> None:
        self.enc = np.array(sta.enc, dtype=U64)
        self.dec = np.array(sta.dec, dtype=U64)
        self.sub_inv = np.array(sta.sub_inv, dtype=U64)
        self.pinv = np.array(sta.pinv, dtype=U64)

    @staticmethod
    def _selectors(keys: Any) -> list[Any]:
        """Per round, an (n, 8) int32 array of table offsets j*1024 + sel*256."""
        k = ~keys.astype(U64)
        k = (k >> U64(12)) | (k << U64(52))
        out = []
        for r in range(ROUNDS):
            kr = k if r == 0 else (k << U64(r)) | (k >> U64(64 - r))
            sel = ((kr >> U64(3)) & _SEL_LOW) | ((kr >> U64(6)) & _SEL_HIGH)
            sel_bytes = sel.view(np.uint8).reshape(-1, 8).astype(np.int32)
            out.append((sel_bytes << 8) + _BYTE_BASE)
        return out

    @staticmethod
    def _apply(table: Any, offsets: Any, x: Any) -> Any:
        idx = offsets + x.view(np.uint8).reshape(-1, 8)
        return np.bitwise_or.reduce(table[idx], axis=1)

    def encrypt(self, keys: Any, blocks: Any) -> Any:
        """uint64 ciphertexts of uint64 `blocks` under uint64 `keys` (same length)."""
        x = np.ascontiguousarray(blocks, dtype=U64)
        if not len(x):
            return x
        for offsets in self._selectors(keys):
            x = self._apply(self.enc, offsets, x)
        return x

    def decrypt(self, keys: Any, blocks: Any) -> Any:
        x = np.ascontiguousarray(blocks, dtype=U64)
        if not len(x):
            return x
        sels = self._selectors(keys)
        idx = x.view(np.uint8).reshape(-1, 8) + (np.arange(8, dtype=np.int32) * 256)[None, :]
        x = np.bitwise_or.reduce(self.pinv[idx], axis=1)
        for r in range(ROUNDS - 1, 0, -1):
            x = self._apply(self.dec, sels[r], x)
        return self._apply(self.sub_inv, sels[0], x)


def batch_cipher(sta: Sta) -> StaBatch:
    """The numpy form of a cipher, kept on the cipher itself (lives and dies with it)."""
    if sta.batch is None:
        sta.batch = StaBatch(sta)
    found: StaBatch = sta.batch
    return found
