"""Key components and key check values: how a KMC's vending key reaches the utility.

A KMC sends a vending key as two or three components, each to a different custodian, with a
letter giving each component's key check value (KCV) and the combined key's.  The key is the
XOR of the components; no single custodian ever knows it.

KCV definitions (docs/security-module.md):
- DES (DKGA02, 64-bit): the first 3 bytes of DES(key, 0000000000000000), the customary
  banking KCV.
- DKGA04 (160-bit HMAC key): the first 3 bytes of HMAC-SHA-256(key, 0000000000000000), i.e. the
  key used exactly as DKGA04 uses it, over one all-zero 64-bit block.  A PKCS#11 module computes
  it with CKM_SHA256_HMAC on the key object, so the check needs no clear key.
Shown as 6 upper-case hex digits.
"""

from __future__ import annotations

import hashlib
import hmac

from sts.crypto import des
from sts.errors import InputError, KeyDataError
from sts.vending.keys.security_module import VENDING_KEY_BYTES

ZERO_BLOCK = bytes(8)
KCV_BYTES = 3
COMPONENT_COUNTS = (2, 3)


def kcv(key: bytes, dkga: int) -> str:
    """The key check value of a vending key (or of a component) for its algorithm."""
    if dkga == 2:
        if len(key) != 8:
            raise KeyDataError("a DES key check value needs a 64-bit key", field="key")
        out = des.encrypt(key, 0).to_bytes(8, "big")
    elif dkga == 4:
        out = hmac.digest(key, ZERO_BLOCK, hashlib.sha256)
    else:
        raise InputError("dkga must be 2 or 4", field="dkga")
    return out[:KCV_BYTES].hex().upper()


def parse_component(text: str, dkga: int, number: int) -> bytearray:
    """A custodian's component from hex (spaces and dashes between groups allowed)."""
    field = f"component{number}"
    want = VENDING_KEY_BYTES.get(dkga)
    if want is None:
        raise InputError("dkga must be 2 or 4", field="dkga")
    cleaned = "".join(ch for ch in text.strip() if ch not in " -\t")
    try:
        raw = bytearray(bytes.fromhex(cleaned))
    except ValueError:
        raise KeyDataError(f"component {number} must be hexadecimal digits", field=field) from None
    if len(raw) != want:
        got = len(raw) * 8
        raw[:] = bytes(len(raw))
        raise KeyDataError(f"component {number} must be {want * 8} bits ({want * 2} hex digits), "
                           f"got {got} bits", field=field)
    if not any(raw):
        raise KeyDataError(f"component {number} is all zeros", field=field)
    return raw


def combine(components: list[bytearray]) -> bytearray:
    """The XOR of the components (into a fresh buffer the caller wipes)."""
    if len(components) not in COMPONENT_COUNTS:
        raise InputError("a key has 2 or 3 components", field="components")
    out = bytearray(len(components[0]))
    for comp in components:
        if len(comp) != len(out):
            raise KeyDataError("components differ in length", field="components")
        for i, b in enumerate(comp):
            out[i] ^= b
    return out


def normalise_kcv(text: str, field: str = "kcv") -> str:
    value = text.strip().upper()
    if len(value) != 2 * KCV_BYTES or any(c not in "0123456789ABCDEF" for c in value):
        raise InputError(f"{field} must be {2 * KCV_BYTES} hex digits", field=field)
    return value


def wipe(*buffers: bytearray) -> None:
    for buf in buffers:
        buf[:] = bytes(len(buf))
