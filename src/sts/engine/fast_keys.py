"""Keys and ciphers for the vectorised batch path (`sts.engine.fast`), a chunk at a time.

A chunk's lines are grouped by meter *shape*: everything a meter object says except its PAN
(vending key, DKGA, KT, SGC, TI, KRN, EA, base date, table set, KEN) or a bare decoder key.
Per shape the fixed work is done once (the DKGA02 control block and DES context, the DKGA04
HMAC pads and the PRF input around the PAN); per line only what differs is computed:
DKGA02 as one DES call over the group, DKGA04 as one HMAC of 22 bytes past the precomputed
inner pad.  The ciphers then run over each group, one call per table set for STA and one for
MISTY1 (the compiled core when built, else numpy).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from sts.codec.pan import IIN_STS, MeterPan, control_block
from sts.crypto import des, misty1_batch
from sts.crypto.dkga import dkga04_input
from sts.crypto.sta import TableSet
from sts.crypto.sta_batch import batch_cipher

U64 = np.uint64
# Luhn: what doubling adds to a digit (2d, less 9 past 9, minus d)
_DOUBLE_EXTRA = np.array([0, 1, 2, 3, 4, -4, -3, -2, -1, 0], dtype=np.int32)
_STS_IIN = np.array([6, 0, 0, 7, 2, 7], dtype=np.uint8)
_SAMPLE_PAN = "600727000000000009"


class MeterShape:
    """What meters of one shape share, checked and prepared once per chunk."""

    __slots__ = ("base_date", "dk", "dkga", "ea", "ken", "kt", "pads", "prefix", "stated",
                 "suffix", "tables", "vk", "x_control")

    def __init__(self, ea: int, ken: int, base_date: int | None, tables: TableSet | None) -> None:
        self.ea, self.ken, self.base_date, self.tables = ea, ken, base_date, tables
        self.dk: bytes | None = None  # a bare decoder key (key-only meter)
        self.stated: bytes | None = None  # a decoder key stated next to the identity
        self.dkga: int | None = None
        self.kt: int | None = None
        self.vk = b""
        self.x_control = 0
        self.pads: tuple[Any, Any] | None = None
        self.prefix = self.suffix = b""

    @classmethod
    def keyed(cls, ea: int, ken: int, base_date: int | None, tables: TableSet | None,
              dk: bytes) -> MeterShape:
        shape = cls(ea, ken, base_date, tables)
        shape.dk = dk
        return shape

    @classmethod
    def identity(cls, ea: int, ken: int, base_date: int | None, tables: TableSet | None, *,
                 dkga: int, vk: bytes, kt: int, sgc: str, ti: int, krn: int) -> MeterShape | None:
        shape = cls(ea, ken, base_date, tables)
        shape.dkga, shape.vk, shape.kt = dkga, vk, kt
        if dkga == 2:
            shape.x_control = control_block(kt, sgc, ti, krn)
            return shape
        assert base_date is not None
        sample = MeterPan(IIN_STS, _SAMPLE_PAN[6:17])
        bits = 128 if ea == 11 else 64
        msg = dkga04_input(sample, kt, sgc, ti, krn, ea, base_date, bits)
        pan_at = len(msg) - 22
        if msg[pan_at : pan_at + 18] != _SAMPLE_PAN.encode():
            return None  # the PRF input is not `... PAN | L`: leave it to the generic path
        shape.prefix, shape.suffix = msg[:pan_at], msg[pan_at + 18 :]
        key = vk.ljust(64, b"\0")  # 16..64 bytes: HMAC pads the key, never hashes it
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        inner.update(shape.prefix)
        shape.pads = (inner, hashlib.sha256(bytes(b ^ 0x5C for b in key)))
        return shape

    @property
    def cipher_group(self) -> Any:
        return 11 if self.ea == 11 else self.tables


def _luhn_ok(d: Any, first: int, check: int) -> Any:
    """Rows whose digit `check` is the Luhn check digit of digits first..check-1."""
    digits = d[:, first:check]
    doubled = digits[:, (check - 1 - first) % 2 :: 2]  # every second digit from the right
    total = digits.sum(axis=1, dtype=np.int32) + _DOUBLE_EXTRA[doubled].sum(axis=1, dtype=np.int32)
    return (10 - total % 10) % 10 == d[:, check]


def _digits(pans: list[str]) -> Any:
    """(n, 18) uint8 digit values; a non-digit shows as a value above 9."""
    return np.frombuffer("".join(pans).encode(), dtype=np.uint8).reshape(-1, 18) - np.uint8(48)


def pans_valid(pans: list[str]) -> Any:
    """Vectorised MeterPAN checks (18 characters each): digits, IIN, PAN and DRN check digits."""
    if not pans:
        return np.zeros(0, dtype=bool)
    text = "".join(pans)
    if not text.isascii():  # rare: check line by line
        return np.array([p.isascii() and bool(pans_valid([p])[0]) for p in pans], dtype=bool)
    d = _digits(pans)
    digits_ok = (d <= 9).all(axis=1)
    d = np.minimum(d, 9)
    sts_iin = (d[:, :6] == _STS_IIN).all(axis=1)
    short_iin = (d[:, :4] == 0).all(axis=1)
    drn_ok = np.where(sts_iin, _luhn_ok(d, 6, 16), short_iin & _luhn_ok(d, 4, 16))
    return digits_ok & _luhn_ok(d, 0, 17) & drn_ok


def _pan_blocks(pans: list[str]) -> Any:
    d = _digits(pans)[:, 1:17].astype(U64)
    shifts = (U64(4) * np.arange(15, -1, -1, dtype=U64))[None, :]
    return np.bitwise_or.reduce(d << shifts, axis=1)


def _hmac_keys(shape: MeterShape, pans: list[str], nbytes: int) -> Any:
    """(m, nbytes) uint8: the first bytes of HMAC-SHA-256(VK, prefix | PAN | L) per PAN."""
    assert shape.pads is not None
    inner, outer = shape.pads
    suffix = shape.suffix
    out = []
    for pan in pans:
        h = inner.copy()
        h.update(pan.encode() + suffix)
        o = outer.copy()
        o.update(h.digest())
        out.append(o.digest())
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(-1, 32)[:, :nbytes]


def _dkga02_keys(shape: MeterShape, pans: list[str]) -> Any:
    """DK = DES(VK, X) xor X xor VK over the group, X = PANBlock xor CONTROLBlock."""
    x = _pan_blocks(pans) ^ U64(shape.x_control)
    enc = np.frombuffer(des.encrypt_blocks(shape.vk, x.astype(">u8").tobytes()), dtype=">u8")
    return enc.astype(U64) ^ x ^ U64(int.from_bytes(shape.vk, "big"))


def derived_keys(shape: MeterShape, pans: list[str]) -> Any:
    """Each PAN's decoder key under an identity shape: uint64 per PAN (64-bit keys), or an
    (m, 16) uint8 array for EA11; DKGA02 by one DES call, DKGA04 from the shape's HMAC pads."""
    if shape.dkga == 2:
        return _dkga02_keys(shape, pans)
    if shape.ea == 11:
        return _hmac_keys(shape, pans, 16)
    return np.ascontiguousarray(_hmac_keys(shape, pans, 8)).view(">u8")[:, 0]


def run_ciphers(shapes: list[MeterShape], shape_of: Any, pans: list[str | None], blocks: Any,
                *, decrypt: bool) -> tuple[Any, Any]:
    """(each line's block through its meter's cipher under its decoder key, per line False
    where the derived key differs from a stated decoder key).

    `shape_of[i]` indexes `shapes` (-1: skip the line); identity lines carry a PAN already
    checked valid.
    """
    out = np.zeros(len(blocks), dtype=U64)
    agrees = np.ones(len(blocks), dtype=bool)
    groups: dict[Any, list[Any]] = {}
    for s, shape in enumerate(shapes):
        idx = np.flatnonzero(shape_of == s)
        if len(idx):
            groups.setdefault(shape.cipher_group, []).append((shape, idx))
    for group, members in groups.items():
        wide = group == 11
        idx = np.concatenate([i for _, i in members])
        keys = np.empty((len(idx), 16), dtype=np.uint8) if wide else np.empty(len(idx), dtype=U64)
        at = 0
        for shape, sel in members:
            part = slice(at, at + len(sel))
            at += len(sel)
            if shape.dk is not None:
                keys[part] = (np.frombuffer(shape.dk, dtype=np.uint8) if wide
                              else int.from_bytes(shape.dk, "big"))
                continue
            keys[part] = derived_keys(shape, [pans[i] or "" for i in sel.tolist()])
            if shape.stated is not None:
                if wide:
                    same = (keys[part] == np.frombuffer(shape.stated, dtype=np.uint8)).all(axis=1)
                else:
                    same = keys[part] == U64(int.from_bytes(shape.stated, "big"))
                agrees[sel] = same
        if wide:
            out[idx] = misty1_batch.crypt(keys, blocks[idx], decrypt=decrypt)
        else:
            cipher = batch_cipher(group.cipher)
            sta_run = cipher.decrypt if decrypt else cipher.encrypt
            out[idx] = sta_run(keys, blocks[idx])
    return out, agrees
