"""Decoder key generation: DKGA02 (DES) and DKGA04 (KDF-HMAC-SHA-256) (spec digest §7).

DKGA01 and DKGA03 have no reliable public definition or vector, so they raise NotSupported
rather than produce keys nobody can vouch for.  Key material never enters an exception text.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from sts.codec.pan import MeterPan, control_block, pan_block
from sts.crypto import des
from sts.errors import InputError, KeyDataError, NotSupported

DKGA_SUPPORTED = (2, 4)
DKGA_KNOWN = (1, 2, 3, 4)


def dkga02(vending_key: bytes, pan: MeterPan, kt: int, sgc: str, ti: int, krn: int) -> bytes:
    """DK = DES(VK, X) xor X xor VK, X = PANBlock xor CONTROLBlock."""
    if len(vending_key) != 8:
        raise KeyDataError(
            f"DKGA02 needs a 64-bit vending key, got {len(vending_key) * 8} bits",
            field="vending_key",
        )
    x = pan_block(pan, kt) ^ control_block(kt, sgc, ti, krn)
    vk = int.from_bytes(vending_key, "big")
    return (des.encrypt(vending_key, x) ^ x ^ vk).to_bytes(8, "big")


def _lv(text: str) -> bytes:
    raw = text.encode("ascii")
    return bytes([len(raw)]) + raw


@lru_cache(maxsize=1024)
def _dkga04_prefix(kt: int, sgc: str, ti: int, krn: int, ea: int, base_date: int) -> bytes:
    """Label | 00 | Context up to (not including) the length-prefixed PAN."""
    label = b"\x04" + _lv("04") + _lv(f"{base_date % 100:02d}") + _lv(f"{ea:02d}") + _lv(f"{ti:02d}")
    return label + b"\x00" + b"\x04" + _lv(sgc) + _lv(f"{kt:d}") + _lv(f"{krn:d}")


def dkga04_input(
    pan: MeterPan, kt: int, sgc: str, ti: int, krn: int, ea: int, base_date: int, bits: int
) -> bytes:
    """The PRF input: Label | 00 | Context | L (each field length-prefixed ASCII)."""
    return (_dkga04_prefix(kt, sgc, ti, krn, ea, base_date) + _lv(pan.pan)
            + bits.to_bytes(4, "big"))


@lru_cache(maxsize=64)
def _hmac_pads(vending_key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer pads of a 16..64-byte key (RFC 2104:
    such a key is zero-padded to the block, never hashed), so one HMAC costs two copies."""
    key = vending_key.ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)),
            hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _hmac_sha256(vending_key: bytes, message: bytes) -> bytes:
    inner_pad, outer_pad = _hmac_pads(vending_key)
    inner = inner_pad.copy()
    inner.update(message)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def dkga04(
    vending_key: bytes,
    pan: MeterPan,
    kt: int,
    sgc: str,
    ti: int,
    krn: int,
    ea: int,
    base_date: int,
) -> bytes:
    """NIST SP 800-108 KDF (HMAC-SHA-256, one block): 64-bit key for EA07, 128 for EA11."""
    if not 16 <= len(vending_key) <= 64:
        raise KeyDataError(
            f"DKGA04 needs a vending key of 128..512 bits, got {len(vending_key) * 8}",
            field="vending_key",
        )
    bits = 128 if ea == 11 else 64
    message = dkga04_input(pan, kt, sgc, ti, krn, ea, base_date, bits)
    return _hmac_sha256(vending_key, message)[: bits // 8]


def derive(
    dkga: int,
    vending_key: bytes,
    pan: MeterPan,
    *,
    kt: int,
    sgc: str,
    ti: int,
    krn: int,
    ea: int,
    base_date: int | None,
) -> bytes:
    """The decoder key for a meter identity under a vending key."""
    if dkga == 2:
        if ea == 11:
            raise InputError("DKGA02 makes 64-bit keys; EA11 needs DKGA04", field="dkga")
        return dkga02(vending_key, pan, kt, sgc, ti, krn)
    if dkga == 4:
        if base_date is None:
            raise InputError("DKGA04 needs the key's base_date", field="base_date")
        return dkga04(vending_key, pan, kt, sgc, ti, krn, ea, base_date)
    if dkga in (1, 3):
        raise NotSupported(
            f"DKGA0{dkga} is not supported: no reliable public definition or test vector "
            "exists (use DKGA02 or DKGA04)",
            field="dkga",
        )
    raise InputError(f"dkga must be one of 1, 2, 3, 4, got {dkga!r}", field="dkga")
