"""Single DES via `cryptography` (3DES with K|K|K is single DES).

Used inside DKGA02 and as EA09 (DEA), which IEC 62055-41:2018 deprecates ("shall not be
used in new products"): it is available for legacy meters and documented as such.
"""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


@lru_cache(maxsize=4096)
def _cipher(key: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Cipher(TripleDES(key * 3), modes.ECB())


class _Contexts(threading.local):
    """Open ECB contexts per key, one set per thread (a context is not thread-safe).

    ECB carries nothing from one block to the next, so a context fed whole blocks can be
    reused for ever: that saves creating one (most of a single DES call's cost) per call.
    """

    def __init__(self) -> None:
        self.enc: dict[bytes, Any] = {}
        self.dec: dict[bytes, Any] = {}


_CONTEXTS = _Contexts()
_CONTEXT_LIMIT = 256


def _context(cache: dict[bytes, Any], key: bytes, decrypt: bool) -> Any:
    ctx = cache.get(key)
    if ctx is None:
        if len(cache) >= _CONTEXT_LIMIT:
            cache.clear()
        cipher = _cipher(key)
        ctx = cache[key] = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx


def encrypt_blocks(key: bytes, data: bytes) -> bytes:
    """DES-ECB of a whole number of 8-byte blocks (one C call for a batch)."""
    if len(data) % 8:
        raise ValueError("DES-ECB needs whole 8-byte blocks")
    return bytes(_context(_CONTEXTS.enc, key, False).update(data))


def decrypt_blocks(key: bytes, data: bytes) -> bytes:
    if len(data) % 8:
        raise ValueError("DES-ECB needs whole 8-byte blocks")
    return bytes(_context(_CONTEXTS.dec, key, True).update(data))


def encrypt(key: bytes, block: int) -> int:
    return int.from_bytes(encrypt_blocks(key, block.to_bytes(8, "big")), "big")


def decrypt(key: bytes, block: int) -> int:
    return int.from_bytes(decrypt_blocks(key, block.to_bytes(8, "big")), "big")
