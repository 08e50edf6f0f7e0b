"""Key change sets for many meters at once (key change campaigns), a chunk at a time.

A campaign moves thousands of meters from one vending key to another.  Per meter the generic
path derives both decoder keys, packs two (EA11: four) blocks through the generic layouts and
encrypts each in Python.  Here the fixed work is done once per chunk (the vending keys'
DKGA02 DES context or DKGA04 HMAC pads, `sts.engine.fast_keys`) and the rest runs over the
chunk: PAN checks, both key derivations, the class 2 subclass 3/4 (8/9) blocks and CRCs,
the cipher (the compiled core or numpy) and the class-bit transposition.

Only the plain case is taken: DKGA02/04, EA07/EA11, KT 0-2, identities in range, valid
PANs.  Every
other meter comes back as None and the caller makes its set through `sts.engine.generate`,
which stays the authority for results and error messages; `tests/engine/
test_keychange_batch.py` holds the two paths to identical tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sts.codec.layouts import layout_for
from sts.crypto import misty1_batch
from sts.crypto.sta import TableSet
from sts.crypto.sta_batch import batch_cipher
from sts.engine.fast import crc_fields
from sts.engine.fast_keys import MeterShape, derived_keys, pans_valid
from sts.engine.model import Issue, IssuedToken

U64 = np.uint64
_MASK32 = U64(0xFFFFFFFF)
_MASK_27_28 = U64(~((1 << 28) | (1 << 27)) & ((1 << 64) - 1))
_CLASS2 = U64(2 << 27)
_DESCRIPTIONS = {sub: layout_for(2, sub, bits).description
                 for sub, bits in ((3, 64), (4, 64), (8, 128), (9, 128))}


@dataclass(frozen=True)
class KeySide:
    """One vending key as a key change needs it (the clear key: lives only in the module's
    call, and never in the repr)."""

    dkga: int
    vending_key: bytes = field(repr=False)
    sgc: str
    krn: int
    ea: int
    base_date: int | None
    tables: TableSet | None


class MeterChange(NamedTuple):
    """One meter's move: its PAN and key type, its TI and KEN before and after."""

    pan: str
    kt: int
    ti: int
    ken: int
    new_ti: int
    new_ken: int


def _side_ok(side: KeySide) -> bool:
    if side.ea not in (7, 11) or side.dkga not in (2, 4):
        return False
    if side.dkga == 2 and (side.ea == 11 or len(side.vending_key) != 8):
        return False
    if side.dkga == 4 and (side.base_date is None or not 16 <= len(side.vending_key) <= 64):
        return False
    if side.ea == 7 and side.tables is None:
        return False
    sgc = side.sgc
    return (isinstance(sgc, str) and len(sgc) == 6 and sgc.isascii() and sgc.isdigit()
            and type(side.krn) is int and 1 <= side.krn <= 9)


def _plain(c: MeterChange) -> bool:
    # KT 3 (common key) zeroes the DRN in DKGA02's PAN block: left to the generic path
    return (type(c.kt) is int and 0 <= c.kt <= 2 and type(c.ti) is int and 0 <= c.ti <= 99
            and type(c.ken) is int and 0 <= c.ken <= 255
            and type(c.new_ti) is int and 0 <= c.new_ti <= 99 and type(c.new_ken) is int
            and 0 <= c.new_ken <= 255 and type(c.pan) is str and len(c.pan) == 18)


def _decoder_keys(side: KeySide, changes: list[MeterChange], new: bool) -> Any | None:
    """Every meter's decoder key under `side` (uint64, or (n, 16) uint8 for EA11), grouped
    by (KT, TI) so each group's shape is prepared once; None if a shape is not plain."""
    wide = side.ea == 11
    n = len(changes)
    keys = np.empty((n, 16), dtype=np.uint8) if wide else np.empty(n, dtype=U64)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(changes):
        groups.setdefault((c.kt, c.new_ti if new else c.ti), []).append(i)
    for (kt, ti), idx in groups.items():
        shape = MeterShape.identity(side.ea, 255, side.base_date, side.tables, dkga=side.dkga,
                                    vk=side.vending_key, kt=kt, sgc=side.sgc, ti=ti,
                                    krn=side.krn)
        if shape is None:
            return None
        keys[np.array(idx, dtype=np.intp)] = derived_keys(shape, [changes[i].pan for i in idx])
    return keys


def key_change_many(old: KeySide, new: KeySide, changes: Sequence[MeterChange], *,
                    ro: bool) -> list[Issue | None]:
    """Each meter's key change set from `old` to `new` (no follow-up token, no third token),
    the same tokens `engine.generate` makes; None for a meter this path does not take."""
    out: list[Issue | None] = [None] * len(changes)
    if not changes or not _side_ok(old) or not _side_ok(new) or old.ea != new.ea:
        return out
    wide = new.ea == 11
    take = [i for i, c in enumerate(changes) if _plain(c)]
    if not take:
        return out
    valid = pans_valid([changes[i].pan for i in take]).tolist()
    take = [i for i, ok in zip(take, valid, strict=True) if ok]
    if not take:
        return out
    chosen = [changes[i] for i in take]
    old_keys = _decoder_keys(old, chosen, False)
    new_keys = _decoder_keys(new, chosen, True)
    if old_keys is None or new_keys is None:
        return out
    n = len(chosen)
    kt = np.array([c.kt for c in chosen], dtype=U64)
    ti = np.array([c.new_ti for c in chosen], dtype=U64)
    ken = np.array([c.new_ken for c in chosen], dtype=U64)
    if wide:
        words = np.ascontiguousarray(new_keys).view(">u4").astype(U64)  # (n, 4), high first
        high, low = words[:, 0], words[:, 3]
    else:
        high, low = new_keys >> U64(32), new_keys & _MASK32
    first = ((U64(3) << U64(60)) | ((ken >> U64(4)) << U64(56)) | (U64(new.krn) << U64(52))
             | (U64(int(ro)) << U64(51)) | (kt << U64(48)) | (high << U64(16)))
    second = (U64(4) << U64(60)) | ((ken & U64(15)) << U64(56)) | (ti << U64(48)) | (low << U64(16))
    parts = [first, second]
    subclasses = [3, 4]
    if wide:
        sgc = int(new.sgc)
        parts.append((U64(8) << U64(60)) | U64((sgc & 0xFFF) << 48) | (words[:, 1] << U64(16)))
        parts.append((U64(9) << U64(60)) | U64((sgc >> 12) << 48) | (words[:, 2] << U64(16)))
        subclasses += [8, 9]
    plain = np.concatenate(parts)
    plain |= crc_fields((U64(2) << U64(48)) | (plain >> U64(16))).astype(U64)
    if wide:
        enc = misty1_batch.crypt(np.concatenate([old_keys] * len(parts)), plain, decrypt=False)
    else:
        assert old.tables is not None
        enc = batch_cipher(old.tables.cipher).encrypt(np.concatenate([old_keys] * len(parts)),
                                                      plain)
    moved = ((enc >> U64(27)) & U64(3)).tolist()
    rest = ((enc & _MASK_27_28) | _CLASS2).tolist()
    blocks = plain.tolist()
    count = len(parts)
    for j, i in enumerate(take):
        tokens = []
        for p in range(count):
            at = p * n + j
            sub = subclasses[p]
            tokens.append(IssuedToken(f"{(moved[at] << 64) | rest[at]:020d}", 2, sub, blocks[at],
                                      None, _DESCRIPTIONS[sub]))
        out[i] = Issue(tuple(tokens), None)
    return out
