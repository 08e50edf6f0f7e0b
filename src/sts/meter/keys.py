"""The meter's own key: what a real meter holds, and nothing a vending system holds.

`OwnKey` is an engine `MeterKey` in key-only form (decoder key plus identity: KRN, TI, SGC,
KT, KEN, base date) that never carries a vending key.  It prepares its cipher once, so a
fleet of thousands of meters does not redo per-key work on every token; the result is
checked against the engine's plain decryption by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sts.codec.pan import parse_pan
from sts.crypto.sta import table_set
from sts.engine.model import EA_STA, KEN_NO_EXPIRY, MeterKey
from sts.errors import InputError, KeyDataError, MeterStateError


@dataclass(frozen=True)
class OwnKey(MeterKey):
    """A meter's decoder key with its cipher schedule prepared once."""

    _decrypt: Callable[[int], int] = field(init=False, repr=False, compare=False)
    # cipher block -> plain block, computed ahead in bulk by the fleet runner (see `hint`)
    hints: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vending_key is not None:
            raise KeyDataError("a meter never holds a vending key", field="vending_key")
        object.__setattr__(self, "_decrypt", self.decryptor())
        object.__setattr__(self, "hints", {})

    def decrypt(self, block: int) -> int:
        if self.hints:
            plain = self.hints.pop(block, None)
            if plain is not None:
                return plain
        return self._decrypt(block)

    def hint(self, cipher_block: int, plain_block: int) -> None:
        """Offer the decryption of `cipher_block` under this very key, computed elsewhere
        (a vectorised batch); used once, by the next `decrypt` of that block."""
        self.hints[cipher_block] = plain_block

    @classmethod
    def of(cls, key: MeterKey, **changes: Any) -> OwnKey:
        """The meter's own copy of `key` (vending key dropped), with `changes` applied."""
        values: dict[str, Any] = {
            "ea": key.ea, "decoder_key": key.decoder_key, "table_set": key.table_set,
            "base_date": key.base_date, "ken": key.ken, "kt": key.kt, "krn": key.krn,
            "ti": key.ti, "sgc": key.sgc, "pan": key.pan, "dkga": key.dkga,
            "mfr_code": key.mfr_code,
        }
        values.update(changes)
        return cls(**values)


def key_to_json(key: MeterKey, table_set_name: str | None) -> dict[str, Any]:
    return {
        "ea": key.ea,
        "decoder_key": key.decoder_key.hex(),
        "table_set": table_set_name,
        "base_date": key.base_date,
        "ken": key.ken,
        "kt": key.kt,
        "krn": key.krn,
        "ti": key.ti,
        "sgc": key.sgc,
        "pan": str(key.pan) if key.pan is not None else None,
        "mfr_code": key.mfr_code,
    }


def key_from_json(obj: Mapping[str, Any], tables_file: str | None) -> OwnKey:
    try:
        ea = obj["ea"]
        tables = None
        if ea == EA_STA:
            tables = table_set(obj.get("table_set") or "production", tables_file)
        pan = obj.get("pan")
        return OwnKey(
            ea=ea,
            decoder_key=bytes.fromhex(obj["decoder_key"]),
            table_set=tables,
            base_date=obj.get("base_date"),
            ken=obj.get("ken", KEN_NO_EXPIRY),
            kt=obj.get("kt"),
            krn=obj.get("krn"),
            ti=obj.get("ti"),
            sgc=obj.get("sgc"),
            pan=parse_pan(pan) if pan is not None else None,
            mfr_code=obj.get("mfr_code"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MeterStateError(f"the state file's key section is malformed ({exc})",
                              field="key") from None
    except InputError as exc:
        raise MeterStateError(f"the state file's key section is invalid: {exc.message}",
                              field="key") from None
