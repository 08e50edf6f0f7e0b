"""Single DES via `cryptography` (3DES with K|K|K is single DES).

Used inside DKGA02 and as EA09 (DEA), which IEC 62055-41:2018 deprecates ("shall not be
used in new products"): it is available for legacy meters and documented as such.
"""

from __future__ import annotations

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


def encrypt_blocks(key: bytes, data: bytes) -> bytes:
    """DES-ECB of a whole number of 8-byte blocks (one C call for a batch)."""
    enc = _cipher(key).encryptor()
    return bytes(enc.update(data))


def decrypt_blocks(key: bytes, data: bytes) -> bytes:
    dec = _cipher(key).decryptor()
    return bytes(dec.update(data))


def encrypt(key: bytes, block: int) -> int:
    return int.from_bytes(encrypt_blocks(key, block.to_bytes(8, "big")), "big")


def decrypt(key: bytes, block: int) -> int:
    return int.from_bytes(decrypt_blocks(key, block.to_bytes(8, "big")), "big")
