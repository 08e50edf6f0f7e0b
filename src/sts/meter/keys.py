"""The meter's own key: what a real meter holds, and nothing a vending system holds.

`OwnKey` is an engine `MeterKey` in key-only form (decoder key plus identity: KRN, TI, SGC,
KT, KEN, base date) that never carries a vending key.  It prepares its cipher once, so a
fleet of thousands of meters does not redo per-key work on every token; the result is
checked against the engine's plain decryption by the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sts.codec.pan import parse_pan
from sts.crypto.sta import table_set
from sts.engine.model import EA_STA, KEN_NO_EXPIRY, MeterKey
from sts.errors import InputError, KeyDataError, MeterStateError


def _keyed_decryptor(key: MeterKey) -> Callable[[int], int]:
    """A decrypt function for one key with the per-key schedule computed once (EA07).

    Uses the table set's own `decryptor` if the engine offers one; otherwise a copy of the
    shared cipher whose key-schedule method returns the precomputed schedule.  Falls back to
    the plain engine call if neither applies.
    """
    if key.ea != EA_STA or key.table_set is None:
        return lambda block: MeterKey.decrypt(key, block)
    cipher = key.table_set.cipher
    key_int = key.key_int
    maker = getattr(cipher, "decryptor", None)
    if callable(maker):
        fn: Callable[[int], int] = maker(key_int)
        return fn
    for name in ("round_selectors", "round_offsets"):
        schedule_of = getattr(cipher, name, None)
        if callable(schedule_of):
            return _with_schedule(cipher, name, schedule_of(key_int), key_int)
    plain = cipher.decrypt
    return lambda block: plain(key_int, block)


def _with_schedule(cipher: Any, name: str, schedule: Any, key_int: int) -> Callable[[int], int]:
    keyed = copy.copy(cipher)
    setattr(keyed, name, lambda _key: schedule)
    decrypt = keyed.decrypt
    return lambda block: decrypt(key_int, block)


@dataclass(frozen=True)
class OwnKey(MeterKey):
    """A meter's decoder key with its cipher schedule prepared once."""

    _decrypt: Callable[[int], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vending_key is not None:
            raise KeyDataError("a meter never holds a vending key", field="vending_key")
        object.__setattr__(self, "_decrypt", _keyed_decryptor(self))

    def decrypt(self, block: int) -> int:
        return self._decrypt(block)

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
