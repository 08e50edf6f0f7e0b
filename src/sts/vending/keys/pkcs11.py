"""Vending keys inside a PKCS#11 token (an HSM; SoftHSM2 in tests).

The database keeps only a key's label (the `blob` of a `pkcs11` key record); the key itself is
a token object that is sensitive and non-extractable, usable for one thing: CKM_SHA256_HMAC,
which is DKGA04.  The meter's decoder key is the only key that comes out (STA and MISTY1 are
not PKCS#11 mechanisms); it lives in this process's memory for `cache_seconds` at most.

What SoftHSM2 2.6.1 allows and refuses, and why DKGA02 keys stay out of the module, is in
docs/security-module.md.  In short: HMAC keys must be at least 32 bytes, so a 160-bit vending
key is stored zero-padded to 32 bytes (HMAC pads short keys with zeros to its block, so the MAC
is identical); DKGA02 ends with `xor VK`, which no standard mechanism can do without handing
the vending key to the host.

Failures of the token (library missing, token absent or removed, PIN refused) raise
`SecurityModuleUnavailable` before anything is written, so the service's transaction rolls
back: no partial sale.  The next operation reconnects by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from sts.codec.pan import parse_pan
from sts.crypto.dkga import dkga04_input
from sts.crypto.sta import TableSet, table_set
from sts.engine import MeterKey
from sts.engine.model import check_identity
from sts.errors import ConfigError, KeyDataError, NotSupported, SecurityModuleUnavailable
from sts.vending.keys.security_module import (
    VENDING_KEY_BYTES,
    DerivingSecurityModule,
    KeyRecord,
    MeterIdentity,
)
from sts.vending.keys.software import SoftwareSecurityModule, read_private

ENV_LIB = "STS_PKCS11_LIB"
ENV_TOKEN = "STS_PKCS11_TOKEN"
ENV_PIN = "STS_PKCS11_PIN"
ENV_PIN_FILE = "STS_PKCS11_PIN_FILE"
ENV_CACHE = "STS_PKCS11_CACHE_SECONDS"
DEFAULT_CACHE_SECONDS = 300.0
CACHE_SIZE = 50_000
BLOB_PREFIX = b"pkcs11:"
LABEL_PREFIX = "sts-vk"
HMAC_KEY_BYTES = 32  # SoftHSM2 refuses shorter CKM_SHA256_HMAC keys (KeySizeRange)
GENERATED_KEY_BITS = 256
KCV_BLOCK = bytes(8)

T = TypeVar("T")

# errors meaning "the token or our session is gone": reconnect and retry once, else 503
_LOST: tuple[type[Exception], ...] = (
    p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.DeviceRemoved, p11e.DeviceError,
    p11e.DeviceMemory, p11e.TokenNotPresent, p11e.TokenNotRecognised, p11e.UserNotLoggedIn,
    p11e.GeneralError, p11e.FunctionFailed, p11e.KeyHandleInvalid, p11e.ObjectHandleInvalid,
    p11e.OperationActive,
)

KEY_DKGA02_REFUSED = (
    "DKGA02 vending keys cannot be held in a PKCS#11 module: the algorithm ends with "
    "'xor VK', which no standard mechanism performs, and the host would learn the key from "
    "DES(VK, X) and the decoder key; keep DKGA02 keys in the software module and move the "
    "meters to a DKGA04 key (see docs/security-module.md)"
)


def label_for(sgc: str, krn: int, dkga: int) -> str:
    """A fresh object label naming the key (a random tail: a re-import never collides)."""
    return f"{LABEL_PREFIX}/{sgc}/{krn}/dkga{dkga:02d}/{secrets.token_hex(4)}"


def blob_label(blob: bytes) -> str | None:
    """The token label a `pkcs11` key record points at (not secret), or None."""
    if not blob.startswith(BLOB_PREFIX):
        return None
    return blob[len(BLOB_PREFIX):].decode("ascii", "replace")


def _key_template(label: str, key_id: bytes) -> dict[Attribute, Any]:
    """A vending key on the token: private, sensitive, never extractable, HMAC only."""
    return {
        Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.VERIFY: False,
        Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.WRAP: False,
        Attribute.UNWRAP: False, Attribute.DERIVE: False, Attribute.LABEL: label,
        Attribute.ID: key_id,
    }


def pin_from_env(pin_file: str | None) -> Callable[[], str | None]:
    """The user PIN, read when the module logs in: $STS_PKCS11_PIN, else the PIN file."""

    def read() -> str | None:
        pin = os.environ.get(ENV_PIN)
        if pin:
            return pin
        chosen = pin_file or os.environ.get(ENV_PIN_FILE)
        if not chosen:
            return None
        try:
            text = read_private(chosen, "the PKCS#11 PIN file", "pkcs11_pin_file").strip()
        except OSError:
            return None
        return text or None

    return read


def check_pin_file(pin_file: str | None) -> None:
    """Refuse, at start, a PIN file the group or others may read (`read_private`)."""
    chosen = pin_file or os.environ.get(ENV_PIN_FILE)
    if chosen and not os.environ.get(ENV_PIN):
        with contextlib.suppress(FileNotFoundError):
            read_private(chosen, "the PKCS#11 PIN file", "pkcs11_pin_file")


class Pkcs11SecurityModule(DerivingSecurityModule):
    """DKGA04 vending keys as non-extractable HMAC keys in a PKCS#11 token.

    One session per process, used under a lock (a PKCS#11 session runs one operation at a
    time); derivations take tens of microseconds, and the decoder-key cache keeps repeat sales
    off the token.  `software`, when given, serves key records still held by the software
    module (before migration, and DKGA02 keys).
    """

    name = "pkcs11"

    def __init__(self, lib_path: str, token_label: str, *, pin: Callable[[], str | None],
                 cache_seconds: float = DEFAULT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, sta_tables: str | None = None,
                 software: SoftwareSecurityModule | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        if cache_seconds < 0:
            raise ConfigError("the decoder key cache time must be >= 0 seconds",
                              field="pkcs11_cache_seconds")
        self.lib_path = lib_path
        self.token_label = token_label
        self._pin = pin
        self.cache_seconds = float(cache_seconds)
        self._clock = clock
        self.sta_tables = sta_tables
        self.software = software
        self._cache_size = cache_size
        self._lock = threading.RLock()
        self._session: Any = None
        self._keys: dict[str, Any] = {}
        self._cache: dict[tuple[object, ...], tuple[float, MeterKey]] = {}
        self._refused_pin: bytes | None = None
        self._reinit = False

    @classmethod
    def from_settings(cls, *, lib_path: str | None, token_label: str | None,
                      pin_file: str | None, cache_seconds: float | None,
                      sta_tables: str | None,
                      software: SoftwareSecurityModule | None) -> Pkcs11SecurityModule:
        lib_path = lib_path or os.environ.get(ENV_LIB)
        token_label = token_label or os.environ.get(ENV_TOKEN)
        if not lib_path:
            raise ConfigError(f"the PKCS#11 module needs its library: ${ENV_LIB} or "
                              "--pkcs11-lib", field="pkcs11_lib")
        if not token_label:
            raise ConfigError(f"the PKCS#11 module needs a token label: ${ENV_TOKEN} or "
                              "--pkcs11-token", field="pkcs11_token")
        if cache_seconds is None:
            raw = os.environ.get(ENV_CACHE, str(DEFAULT_CACHE_SECONDS))
            try:
                cache_seconds = float(raw)
            except ValueError:
                raise ConfigError(f"${ENV_CACHE} must be a number of seconds",
                                  field="pkcs11_cache_seconds") from None
        check_pin_file(pin_file)
        return cls(lib_path, token_label, pin=pin_from_env(pin_file),
                   cache_seconds=cache_seconds, sta_tables=sta_tables, software=software)

    def __repr__(self) -> str:
        return f"Pkcs11SecurityModule(lib={self.lib_path!r}, token={self.token_label!r})"

    # --- the session -------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            lib = pkcs11.lib(self.lib_path)
            if self._reinit:
                lib.reinitialize()
                self._reinit = False
        except p11e.PKCS11Error:
            raise SecurityModuleUnavailable(
                "the security module's PKCS#11 library cannot be loaded", field="module",
            ) from None
        pin = self._pin()
        if not pin:
            raise SecurityModuleUnavailable(
                f"no PIN for the security module (${ENV_PIN} or ${ENV_PIN_FILE})",
                field="module")
        digest = hashlib.sha256(pin.encode()).digest()
        if digest == self._refused_pin:
            raise SecurityModuleUnavailable(
                "the security module refused this PIN; it is not tried again until the PIN "
                "changes (a token locks after a few wrong PINs)", field="module")
        try:
            token = lib.get_token(token_label=self.token_label)
        except p11e.NoSuchToken:
            self._reinit = True  # the library's slot list is stale once a token went away
            raise SecurityModuleUnavailable(
                f"the security module has no token labelled {self.token_label!r}",
                field="module") from None
        except p11e.PKCS11Error:
            self._reinit = True
            raise SecurityModuleUnavailable("the security module does not answer",
                                            field="module") from None
        try:
            return token.open(rw=True, user_pin=pin)
        except p11e.PinIncorrect:
            self._refused_pin = digest
            self._reinit = True  # closes the session the failed login left open
            raise SecurityModuleUnavailable("the security module refused the PIN",
                                            field="module") from None
        except (p11e.PinLocked, p11e.PinExpired, p11e.PinLenRange, p11e.PinInvalid):
            raise SecurityModuleUnavailable("the security module's user PIN is locked, "
                                            "expired or malformed", field="module") from None
        except p11e.UserAlreadyLoggedIn:
            # this process is logged in already (login state is per process and token); the
            # session the login attempt opened is left to the next re-initialisation
            return token.open(rw=True)
        except p11e.PKCS11Error:
            self._reinit = True
            raise SecurityModuleUnavailable("the security module does not answer",
                                            field="module") from None

    def _drop(self) -> None:
        """Forget the session and every handle; the next operation reconnects from scratch."""
        session, self._session = self._session, None
        self._keys.clear()
        self._reinit = True
        if session is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()

    def close(self) -> None:
        """Log out and close the session (the decoder key cache is emptied too)."""
        with self._lock:
            session, self._session = self._session, None
            self._keys.clear()
            self._cache.clear()
            if session is not None:
                with contextlib.suppress(p11e.PKCS11Error):
                    session.close()

    def _run(self, what: str, op: Callable[[Any], T]) -> T:
        """`op(session)` under the lock; a lost session is reopened and `op` retried once."""
        with self._lock:
            for attempt in (0, 1):
                if self._session is None:
                    self._session = self._connect()
                try:
                    return op(self._session)
                except _LOST:
                    self._drop()
                    if attempt:
                        raise SecurityModuleUnavailable(
                            f"the security module stopped answering during {what}",
                            field="module") from None
                except p11e.PKCS11Error as exc:
                    raise ConfigError(f"the security module refused {what} "
                                      f"({type(exc).__name__})", field="module") from None
        raise AssertionError("unreachable")

    def _key(self, session: Any, label: str, key: KeyRecord) -> Any:
        obj = self._keys.get(label)
        if obj is not None:
            return obj
        try:
            obj = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        except p11e.NoSuchKey:
            # a removed token shows no objects at all: tell that apart from a missing key
            lib = pkcs11.lib(self.lib_path)
            if not list(lib.get_tokens(token_label=self.token_label)):
                raise p11e.TokenNotPresent() from None
            raise
        except p11e.MultipleObjectsReturned:
            raise ConfigError(f"the security module holds two objects labelled for vending key "
                              f"{key.sgc}/{key.krn}", field="key") from None
        self._keys[label] = obj
        return obj

    def _label(self, key: KeyRecord) -> str:
        """The record's token label, checked to name this SGC/KRN (as the software module's
        blobs only decrypt for their own SGC/KRN)."""
        label = blob_label(key.blob)
        if label is None or not label.startswith(f"{LABEL_PREFIX}/{key.sgc}/{key.krn}/"):
            raise ConfigError(f"vending key {key.sgc}/{key.krn} does not point at a module key "
                              "made for it", field="key")
        return label

    def _hmac(self, key: KeyRecord, message: bytes, what: str) -> bytes:
        label = self._label(key)

        def op(session: Any) -> bytes:
            try:
                return bytes(self._key(session, label, key).sign(
                    message, mechanism=Mechanism.SHA256_HMAC))
            except p11e.NoSuchKey:
                raise ConfigError(f"vending key {key.sgc}/{key.krn} is not in the security "
                                  f"module (object {label})", field="key") from None

        return self._run(what, op)

    # --- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _check_dkga(dkga: int) -> None:
        if dkga == 2:
            raise NotSupported(KEY_DKGA02_REFUSED, field="dkga")
        if dkga != 4:
            raise KeyDataError(f"DKGA{dkga:02d} is not supported (DKGA04)", field="dkga")

    def create_key(self, *, sgc: str, krn: int, dkga: int) -> bytes:
        """A 256-bit DKGA04 vending key generated by the token's own generator, never seen by
        the host (SoftHSM2 cannot generate the 160-bit size: see the docs)."""
        self._check_dkga(dkga)
        label = label_for(sgc, krn, dkga)

        def op(session: Any) -> bytes:
            session.generate_key(
                KeyType.GENERIC_SECRET, GENERATED_KEY_BITS, store=True,
                mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                template=_key_template(label, secrets.token_bytes(16)))
            return BLOB_PREFIX + label.encode()

        return self._run("key generation", op)

    def import_key(self, raw: bytes, *, sgc: str, krn: int, dkga: int) -> bytes:
        """Put a key from outside (KMC key load, ceremony) into the token by C_UnwrapKey."""
        self._check_dkga(dkga)
        if len(raw) != VENDING_KEY_BYTES[dkga]:
            raise KeyDataError(f"a DKGA{dkga:02d} vending key has {VENDING_KEY_BYTES[dkga] * 8} "
                               "bits", field="vending_key")
        padded = bytearray(raw.ljust(HMAC_KEY_BYTES, b"\0"))
        try:
            return self._unwrap_into(padded, sgc=sgc, krn=krn, dkga=dkga)
        finally:
            padded[:] = bytes(len(padded))

    def _unwrap_into(self, clear: bytearray, *, sgc: str, krn: int, dkga: int) -> bytes:
        """Wrap `clear` (AES key wrap with padding, RFC 5649) under a one-time transport key
        and let the token unwrap it as a token object: the same path a KMC's wrapped key
        takes, and one that FIPS-mode tokens (which refuse clear C_CreateObject) accept."""
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

        label = label_for(sgc, krn, dkga)
        transport = bytearray(secrets.token_bytes(32))
        try:
            wrapped = aes_key_wrap_with_padding(bytes(transport), bytes(clear))

            def op(session: Any) -> bytes:
                tk = session.create_object({
                    Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: bytes(transport), Attribute.TOKEN: False,
                    Attribute.UNWRAP: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                })
                try:
                    tk.unwrap_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, wrapped,
                                  mechanism=Mechanism.AES_KEY_WRAP_PAD, store=True,
                                  template=_key_template(label, secrets.token_bytes(16)))
                finally:
                    tk.destroy()
                return BLOB_PREFIX + label.encode()

            return self._run("key import", op)
        finally:
            transport[:] = bytes(len(transport))

    def destroy_key(self, key: KeyRecord) -> None:
        """Remove a vending key's object from the token (a failed migration's leftover)."""
        label = self._label(key)

        def op(session: Any) -> None:
            for obj in session.get_objects({Attribute.LABEL: label}):
                obj.destroy()
            self._keys.pop(label, None)

        self._run("key destruction", op)

    def key_check_value(self, key: KeyRecord) -> str:
        if key.module != self.name:
            return self.software_for(key).key_check_value(key)
        self._check_dkga(key.dkga)
        return self._hmac(key, KCV_BLOCK, "a key check value")[:3].hex().upper()

    def location(self, key: KeyRecord) -> str:
        """Where a key lives, for `sts admin key list`."""
        if key.module == self.name:
            return f"pkcs11:{self.token_label}:{blob_label(key.blob)}"
        if key.module == "software" and self.software is not None:
            return f"software (KEK {self.software.kek_id})"
        return key.module

    # --- derivation -------------------------------------------------------------------------

    def software_for(self, key: KeyRecord) -> SoftwareSecurityModule:
        """The software module serving a key still held in software (before migration)."""
        if key.module == "software" and self.software is not None:
            return self.software
        raise ConfigError(f"vending key {key.sgc}/{key.krn} is held by module {key.module!r}, "
                          "which is not configured here (a KEK for software-held keys?)",
                          field="key")

    def _tables(self, key: KeyRecord) -> TableSet | None:
        if key.ea != 7:
            return None
        return table_set(key.table_set or "sample", self.sta_tables)

    def meter_key(self, key: KeyRecord, meter: MeterIdentity) -> MeterKey:
        """The meter's decoder key: DKGA04 computed by the token, cached `cache_seconds`."""
        if key.module != self.name:
            return self.software_for(key).meter_key(key, meter)
        ident = (key.id, key.blob, key.sgc, key.krn, key.dkga, key.ea, key.base_date,
                 key.table_set, meter.pan, meter.kt, meter.ti, meter.ken, meter.mfr_code)
        now = self._clock()
        hit = self._cache.get(ident) if self.cache_seconds > 0 else None
        if hit is not None and now < hit[0]:
            return hit[1]
        self._check_dkga(key.dkga)
        check_identity(kt=meter.kt, sgc=key.sgc, ti=meter.ti, krn=key.krn)
        pan = parse_pan(meter.pan)
        bits = 128 if key.ea == 11 else 64
        message = dkga04_input(pan, meter.kt, key.sgc, meter.ti, key.krn, key.ea,
                               key.base_date, bits)
        mac = self._hmac(key, message, "a key derivation")
        derived = MeterKey(ea=key.ea, decoder_key=mac[: bits // 8], table_set=self._tables(key),
                           base_date=key.base_date, ken=meter.ken, kt=meter.kt, krn=key.krn,
                           ti=meter.ti, sgc=key.sgc, pan=pan, dkga=key.dkga,
                           mfr_code=meter.mfr_code)
        if self.cache_seconds > 0:
            if len(self._cache) >= self._cache_size:
                self._expire(now)
            self._cache[ident] = (now + self.cache_seconds, derived)
        return derived

    def _expire(self, now: float) -> None:
        with self._lock:
            for k in [k for k, (until, _) in self._cache.items() if until <= now]:
                self._cache.pop(k, None)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()

    def cached_keys(self) -> int:
        """How many decoder keys are cached and still valid (for tests and status)."""
        now = self._clock()
        return sum(1 for until, _ in self._cache.values() if now < until)
