"""CRC-16 of a token (spec digest §2).

CRC-16/MODBUS parameters (poly 0x8005 reflected = 0xA001, init 0xFFFF, no final XOR) over
class(2) | subclass(4) | payload(44), left-padded to 7 bytes, most significant byte first.
The register is stored byte-swapped in block bits 15..0.  CRC_C (currency subclasses 4-7)
appends one byte 0x01 to the input.
"""

from __future__ import annotations


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
        table.append(reg)
    return tuple(table)


TABLE: tuple[int, ...] = _make_table()


def crc16(data: bytes) -> int:
    """The raw CRC-16/MODBUS register after feeding `data`."""
    reg = 0xFFFF
    table = TABLE
    for byte in data:
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg


def crc_field_of(value56: int, currency: bool = False) -> int:
    """The 16-bit CRC field as stored in a block, for the 50-bit class|subclass|payload value."""
    reg = 0xFFFF
    table = TABLE
    for byte in value56.to_bytes(7, "big"):
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    if currency:
        reg = (reg >> 8) ^ table[(reg ^ 0x01) & 0xFF]
    return ((reg & 0xFF) << 8) | (reg >> 8)


def block_crc(token_class: int, block_without_crc: int, currency: bool = False) -> int:
    """CRC field for a 64-bit block whose bits 15..0 are ignored, with the given class bits."""
    return crc_field_of((token_class << 48) | (block_without_crc >> 16), currency)
