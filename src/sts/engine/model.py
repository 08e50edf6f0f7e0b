"""What the engine works on: a meter's key data, a token request, and issued/decoded tokens."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sts.codec.describe import describe
from sts.codec.pan import MeterPan
from sts.crypto import des, misty1
from sts.crypto.dkga import derive
from sts.crypto.sta import TableSet
from sts.errors import InputError, KeyDataError

EA_STA = 7
EA_DES = 9
EA_MISTY1 = 11
EA_KEY_BYTES = {EA_STA: 8, EA_DES: 8, EA_MISTY1: 16}
KEY_TYPES = {0: "DITK", 1: "DDTK", 2: "DUTK", 3: "DCTK"}
KEN_NO_EXPIRY = 255
_T = TypeVar("_T")


def built(cls: type[_T], **values: Any) -> _T:
    """An instance of frozen dataclass `cls` from a value for every field, without the frozen
    `__init__`'s guarded assignment per field (about a third of a single token call) and
    without `__post_init__`: for the engine's own hot paths, whose values are already checked.
    tests/engine/test_single_forms.py holds it equal to the normal constructor."""
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


@dataclass(frozen=True)
class MeterKey:
    """A meter's current key: the decoder key plus what is known of its identity.

    Either built from a vending key and identity (`derive`) or from a bare decoder key
    (key-only form, as published by some sources).  Keys never appear in the repr.
    """

    ea: int
    decoder_key: bytes = field(repr=False)
    table_set: TableSet | None = None
    base_date: int | None = None
    ken: int = KEN_NO_EXPIRY
    kt: int | None = None
    krn: int | None = None
    ti: int | None = None
    sgc: str | None = None
    pan: MeterPan | None = None
    dkga: int | None = None
    vending_key: bytes | None = field(default=None, repr=False)
    mfr_code: str | None = None
    # the vending system's zone: an issue time with a UTC offset is converted into it
    time_zone: ZoneInfo | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.ea not in EA_KEY_BYTES:
            raise InputError(f"ea must be 7 (STA), 9 (DES) or 11 (MISTY1), got {describe(self.ea)}",
                             field="ea")
        if len(self.decoder_key) != EA_KEY_BYTES[self.ea]:
            raise KeyDataError(
                f"decoder_key for EA{self.ea:02d} must be {EA_KEY_BYTES[self.ea] * 8} bits, got "
                f"{len(self.decoder_key) * 8}",
                field="decoder_key",
            )
        if self.ea == EA_STA and self.table_set is None:
            raise InputError("an EA07 meter needs an STA table set", field="table_set")
        if not 0 <= self.ken <= 255:
            raise InputError(f"ken must be 0..255, got {self.ken}", field="ken")

    @classmethod
    def derive(
        cls,
        *,
        dkga: int,
        vending_key: bytes,
        pan: MeterPan,
        kt: int,
        sgc: str,
        ti: int,
        krn: int,
        ea: int,
        base_date: int | None,
        table_set: TableSet | None = None,
        ken: int = KEN_NO_EXPIRY,
        mfr_code: str | None = None,
        time_zone: ZoneInfo | None = None,
    ) -> MeterKey:
        check_identity(kt=kt, sgc=sgc, ti=ti, krn=krn)
        dk = derive(dkga, vending_key, pan, kt=kt, sgc=sgc, ti=ti, krn=krn, ea=ea,
                    base_date=base_date)
        key = built(cls, ea=ea, decoder_key=dk, table_set=table_set, base_date=base_date,
                    ken=ken, kt=kt, krn=krn, ti=ti, sgc=sgc, pan=pan, dkga=dkga,
                    vending_key=vending_key, mfr_code=mfr_code, time_zone=time_zone)
        key._check()
        return key

    @property
    def key_bits(self) -> int:
        return len(self.decoder_key) * 8

    @property
    def key_int(self) -> int:
        return int.from_bytes(self.decoder_key, "big")

    def encrypt(self, block: int) -> int:
        if self.ea == EA_STA:
            assert self.table_set is not None
            return self.table_set.cipher.encrypt(self.key_int, block)
        if self.ea == EA_MISTY1:
            return misty1.encrypt(self.decoder_key, block)
        return des.encrypt(self.decoder_key, block)

    def decrypt(self, block: int) -> int:
        if self.ea == EA_STA:
            assert self.table_set is not None
            return self.table_set.cipher.decrypt(self.key_int, block)
        if self.ea == EA_MISTY1:
            return misty1.decrypt(self.decoder_key, block)
        return des.decrypt(self.decoder_key, block)

    def decryptor(self) -> Callable[[int], int]:
        """Decryption under this key with the per-key work done once (for a meter's own key)."""
        if self.ea == EA_STA:
            assert self.table_set is not None
            return self.table_set.cipher.decryptor(self.key_int)
        if self.ea == EA_MISTY1:
            key = self.decoder_key
            return lambda block: misty1.decrypt(key, block)
        key = self.decoder_key
        return lambda block: des.decrypt(key, block)



def check_identity(*, kt: int, sgc: str, ti: int, krn: int) -> None:
    """Range rules for the identity fields that enter key derivation and key change tokens."""
    if (type(kt) is int and type(ti) is int and type(krn) is int and type(sgc) is str
            and kt in KEY_TYPES and 0 <= ti <= 99 and 1 <= krn <= 9 and len(sgc) == 6
            and sgc.isdigit()):
        return  # the plain valid case in one test (a single call makes one per key)
    if isinstance(kt, bool) or kt not in KEY_TYPES:
        raise InputError(f"kt must be 0..3 (DITK, DDTK, DUTK, DCTK), got {describe(kt)}", field="kt")
    if not isinstance(sgc, str) or len(sgc) != 6 or not sgc.isdigit():
        raise InputError(f"sgc must be 6 decimal digits, got {describe(sgc)}", field="sgc")
    if isinstance(ti, bool) or not isinstance(ti, int) or not 0 <= ti <= 99:
        raise InputError(f"ti must be 0..99, got {describe(ti)}", field="ti")
    if isinstance(krn, bool) or not isinstance(krn, int) or not 1 <= krn <= 9:
        raise InputError(f"krn must be 1..9, got {describe(krn)}", field="krn")


@dataclass(frozen=True, init=False)
class TokenRequest:
    """One token: class, subclass and its named fields (FORMAT.md names).

    The TID comes from `issued_at` and the key's base date, or is given raw as `tid`.  A naive
    `issued_at` is the vending system's local time; an aware one is converted into the meter's
    `time_zone` (an error when it has none).
    `rnd` None means a fresh random value.
    """

    token_class: int
    subclass: int
    values: Mapping[str, Any] = field(default_factory=dict)
    issued_at: datetime | None = None
    tid: int | None = None
    rnd: int | None = None

    def __init__(self, token_class: int, subclass: int, values: Mapping[str, Any] | None = None,
                 issued_at: datetime | None = None, tid: int | None = None,
                 rnd: int | None = None) -> None:
        # one dict update, not the frozen __init__'s guarded assignment per field: a request
        # is made per token, and this is a tenth of a single call (the engine checks the values)
        self.__dict__.update(token_class=token_class, subclass=subclass,
                             values={} if values is None else values, issued_at=issued_at,
                             tid=tid, rnd=rnd)


@dataclass(frozen=True)
class KeyChangeRequest:
    """A key change set to `new_key`, optionally followed by a token under the new key."""

    new_key: MeterKey
    ro: bool = False
    third_token: bool = False
    then: TokenRequest | None = None


Request = TokenRequest | KeyChangeRequest


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_class: int
    subclass: int
    block: int
    tid: int | None
    description: str

    @property
    def block_hex(self) -> str:
        return f"{self.block:016x}"


@dataclass(frozen=True)
class Issue:
    """Tokens in the order they must be entered, and the TID of the TID-bearing one."""

    tokens: tuple[IssuedToken, ...]
    tid: int | None


@dataclass(frozen=True)
class DecodedToken:
    token: str
    token_class: int
    subclass: int
    block: int
    kind: str
    description: str
    fields: Mapping[str, Any]
    tid: int | None = None
    issued_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "class": self.token_class,
            "subclass": self.subclass,
            "block": f"{self.block:016x}",
            "kind": self.kind,
            "description": self.description,
        }
        out.update(self.fields)
        if self.issued_at is not None:
            out["issued_at"] = self.issued_at.isoformat()
        return out
