"""Vending keys and the security module that alone may use them.

A `SecurityModule` performs every operation that needs a vending key: creating or importing
one (returning an opaque blob for the database), deriving decoder keys, making tokens and
decoding them.  `SoftwareSecurityModule` keeps keys in the database encrypted with AES-256-GCM
under a key-encryption key (KEK) that never enters the database: a file or the STS_KEK
environment variable.  A hardware module would store a key handle in the blob instead.

Raw vending keys exist only inside the module's methods; they are never returned, logged,
put in an exception message or exported.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sts.engine import DecodedToken, Issue, KeyChangeRequest, MeterKey, TokenRequest
from sts.engine import decode as engine_decode
from sts.engine import generate as engine_generate
from sts.errors import NotSupported, SecurityModuleUnavailable, StsError
from sts.vending import metrics

VENDING_KEY_BYTES = {2: 8, 4: 20}  # DKGA02: 64-bit DES key; DKGA04: 160-bit key


@dataclass(frozen=True)
class KeyRecord:
    """What the database holds about a vending key; `blob` means something only to `module`."""

    id: int
    sgc: str
    krn: int
    key_type: str
    dkga: int
    ea: int
    base_date: int
    table_set: str | None
    module: str
    blob: bytes
    issued_until: datetime | None = None
    kct_until: datetime | None = None

    def binding(self) -> bytes:
        """Associated data: a blob only decrypts for the SGC/KRN it was made for."""
        return f"sts-vk|{self.sgc}|{self.krn}".encode()


@dataclass(frozen=True)
class MeterIdentity:
    """A meter's key-relevant identity apart from the vending key."""

    pan: str
    kt: int
    ti: int
    ken: int = 255
    mfr_code: str | None = None


@dataclass(frozen=True)
class KeyChangeItem:
    """One meter's key change set, as `SecurityModule.key_change_many` takes it."""

    old: KeyRecord
    meter: MeterIdentity
    new: KeyRecord
    new_meter: MeterIdentity
    ro: bool


# the operations counted in `sts_security_module_calls` (`sts.vending.metrics`)
COUNTED = ("create_key", "import_key", "release_decoder_key", "issue", "key_change",
           "key_change_many", "decode", "key_check_value")
_depth = threading.local()


def _counted(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, counted once per outer call (a module's method calling another, or its
    parent's, is one operation)."""
    @functools.wraps(method)
    def call(self: SecurityModule, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_depth, "n", 0)
        _depth.n = depth + 1
        ok = False
        try:
            out = method(self, *args, **kwargs)
            ok = True
            return out
        finally:
            _depth.n = depth
            if depth == 0:
                metrics.security_module_call(self.name, operation, ok)

    return call


class SecurityModule(ABC):
    name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for operation in COUNTED:
            method = cls.__dict__.get(operation)
            if callable(method) and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, operation, _counted(operation, method))

    @abstractmethod
    def create_key(self, *, sgc: str, krn: int, dkga: int) -> bytes:
        """A fresh vending key from a CSPRNG; returns the blob to store."""

    # the STA table file this module uses (None: the built-in sample tables only); the
    # simulated meters load the same tables
    sta_tables: str | None = None

    def release_decoder_key(self, key: KeyRecord, meter: MeterIdentity) -> MeterKey:
        """A meter's decoder key, handed out of the module for a simulated or virtual meter
        (never a vending key).  Modules that cannot release one refuse."""
        raise NotSupported("this security module does not release decoder keys", field="module")

    @abstractmethod
    def import_key(self, raw: bytes, *, sgc: str, krn: int, dkga: int) -> bytes:
        """Take a vending key from outside (e.g. a key-load file); returns the blob."""

    @abstractmethod
    def issue(self, key: KeyRecord, meter: MeterIdentity, request: TokenRequest) -> Issue:
        """Tokens for one request under the meter's key."""

    @abstractmethod
    def key_change(self, old: KeyRecord, meter: MeterIdentity, new: KeyRecord,
                   new_meter: MeterIdentity, *, ro: bool,
                   then: TokenRequest | None) -> Issue:
        """A key change set from the meter's key to the new one, plus an optional token."""

    def key_change_many(self, items: Sequence[KeyChangeItem]) -> list[Issue | StsError]:
        """Key change sets (no follow-up token) for many meters, in order: each meter's set,
        or the StsError its `key_change` raised.  An unreachable module raises (nothing is
        issued).  This default makes them one by one; a module may do the chunk at once."""
        out: list[Issue | StsError] = []
        for it in items:
            try:
                out.append(self.key_change(it.old, it.meter, it.new, it.new_meter, ro=it.ro,
                                           then=None))
            except SecurityModuleUnavailable:
                raise
            except StsError as exc:
                out.append(exc)
        return out

    @abstractmethod
    def decode(self, key: KeyRecord, meter: MeterIdentity, token: str) -> DecodedToken:
        """What a meter holding this key would make of a token."""

    def key_check_value(self, key: KeyRecord) -> str:
        """The key's check value (KCV, docs/security-module.md), computed where the key lives."""
        raise NotSupported(f"the {self.name} module cannot compute key check values",
                           field="module")

    def close(self) -> None:
        """Release what the module holds open (sessions); the default holds nothing."""
        return None


for _operation in COUNTED:  # the base class's own defaults are counted too
    _method = SecurityModule.__dict__.get(_operation)
    if callable(_method) and not getattr(_method, "__isabstractmethod__", False):
        setattr(SecurityModule, _operation, _counted(_operation, _method))


class DerivingSecurityModule(SecurityModule):
    """A module that hands the engine a meter's decoder key: tokens are made in-process.

    STA and MISTY1 are not mechanisms any security module offers, so the decoder key (never a
    vending key) is the one key that has to come out of the module.
    """

    @abstractmethod
    def meter_key(self, key: KeyRecord, meter: MeterIdentity) -> MeterKey:
        """The meter's decoder key under the vending key `key`."""

    def release_decoder_key(self, key: KeyRecord, meter: MeterIdentity) -> MeterKey:
        return self.meter_key(key, meter)

    def issue(self, key: KeyRecord, meter: MeterIdentity, request: TokenRequest) -> Issue:
        if request.token_class == 1:
            return engine_generate(None, request)
        return engine_generate(self.meter_key(key, meter), request)

    def key_change(self, old: KeyRecord, meter: MeterIdentity, new: KeyRecord,
                   new_meter: MeterIdentity, *, ro: bool,
                   then: TokenRequest | None) -> Issue:
        current = self.meter_key(old, meter)
        target = self.meter_key(new, new_meter)
        return engine_generate(current, KeyChangeRequest(new_key=target, ro=ro, then=then))

    def decode(self, key: KeyRecord, meter: MeterIdentity, token: str) -> DecodedToken:
        return engine_decode(token, self.meter_key(key, meter), check_ken=False)
