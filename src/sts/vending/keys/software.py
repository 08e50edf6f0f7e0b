"""The software security module: vending keys wrapped under a key-encryption key (KEK) in
the database, unwrapped only in memory to derive decoder keys."""


from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sts.codec.pan import MeterPan, parse_pan
from sts.crypto.sta import TableSet, table_set
from sts.engine import Issue, MeterKey
from sts.errors import ConfigError, KeyDataError, StsError
from sts.vending.keys.security_module import (
    VENDING_KEY_BYTES,
    DerivingSecurityModule,
    KeyChangeItem,
    KeyRecord,
    MeterIdentity,
)

if TYPE_CHECKING:
    from sts.engine.keychange_batch import KeySide

ENV_KEK = "STS_KEK"
ENV_KEK_FILE = "STS_KEK_FILE"
BLOB_VERSION = b"\x01"
DERIVED_CACHE_SIZE = 50_000  # derived decoder keys kept per process (SoftwareSecurityModule)


# --- the key-encryption key ------------------------------------------------------------------


def _parse_kek(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        kek = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"the KEK in {where} must be 64 hex digits", field="kek") from None
    if len(kek) != 32:
        raise ConfigError(f"the KEK in {where} must be 256 bits (64 hex digits)", field="kek")
    return kek


def read_private(path: str | Path, what: str, field: str) -> str:
    """The text of a file holding a secret (a KEK, a PIN), refused when its mode lets the
    group or others read or write it: a secret anyone on the host can read protects nothing.
    The mode is checked on the open file, so the file read is the file checked."""
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd) as fh:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{what} {path} may be read or written by others (mode "
                              f"{mode:04o}); make it private: chmod 600 {path}", field=field)
        return fh.read()


def create_kek_file(path: Path) -> None:
    """Write a fresh random KEK, readable by the owner only (the dev/demo default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_bytes(32).hex() + "\n")


def load_kek(path: str | Path | None = None) -> bytes:
    """The KEK from STS_KEK (hex), else the file `path` or STS_KEK_FILE."""
    env = os.environ.get(ENV_KEK)
    if env:
        return _parse_kek(env, f"${ENV_KEK}")
    chosen = path if path is not None else os.environ.get(ENV_KEK_FILE)
    if not chosen:
        raise ConfigError(
            f"no key-encryption key: give --kek-file FILE, ${ENV_KEK_FILE} or ${ENV_KEK}",
            field="kek",
        )
    try:
        return _parse_kek(read_private(chosen, "the KEK file", "kek"), str(chosen))
    except FileNotFoundError:
        raise ConfigError(f"the KEK file {chosen} does not exist", field="kek") from None


# --- the software module ------------------------------------------------------------------------


class SoftwareSecurityModule(DerivingSecurityModule):
    """Keys encrypted with AES-256-GCM under the KEK; tokens made by the engine in-process."""

    name = "software"

    def __init__(self, kek: bytes, *, sta_tables: str | None = None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(kek) != 32:
            raise ConfigError("the KEK must be 256 bits", field="kek")
        self._aead = AESGCM(kek)
        self.kek_id = hashlib.sha256(b"sts-kek-id|" + kek).hexdigest()[:8]
        self.sta_tables = sta_tables
        self._derived: dict[tuple[object, ...], MeterKey] = {}

    def __repr__(self) -> str:
        return f"SoftwareSecurityModule(kek_id={self.kek_id})"

    # key storage
    def _wrap(self, raw: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return BLOB_VERSION + nonce + self._aead.encrypt(nonce, raw, aad)

    def _unwrap(self, key: KeyRecord) -> bytes:
        from cryptography.exceptions import InvalidTag

        blob = key.blob
        if key.module != self.name or blob[:1] != BLOB_VERSION:
            raise ConfigError(f"vending key {key.sgc}/{key.krn} is held by module {key.module!r}",
                              field="key")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], key.binding())
        except InvalidTag:
            raise ConfigError(
                f"vending key {key.sgc}/{key.krn} does not decrypt: wrong KEK or altered record",
                field="kek",
            ) from None

    @staticmethod
    def _check_len(raw: bytes, dkga: int) -> None:
        want = VENDING_KEY_BYTES.get(dkga)
        if want is None:
            raise KeyDataError(f"DKGA{dkga:02d} is not supported (02 or 04)", field="dkga")
        if len(raw) != want:
            raise KeyDataError(f"a DKGA{dkga:02d} vending key has {want * 8} bits",
                               field="vending_key")

    def create_key(self, *, sgc: str, krn: int, dkga: int) -> bytes:
        raw = secrets.token_bytes(VENDING_KEY_BYTES.get(dkga, 0) or 20)
        self._check_len(raw, dkga)
        return self._wrap(raw, f"sts-vk|{sgc}|{krn}".encode())

    def import_key(self, raw: bytes, *, sgc: str, krn: int, dkga: int) -> bytes:
        self._check_len(raw, dkga)
        return self._wrap(raw, f"sts-vk|{sgc}|{krn}".encode())

    # token operations
    def _tables(self, key: KeyRecord) -> TableSet | None:
        if key.ea != 7:
            return None
        return table_set(key.table_set or "sample", self.sta_tables)

    def meter_key(self, key: KeyRecord, meter: MeterIdentity) -> MeterKey:
        """The meter's decoder key, derived once per key record and meter identity.

        The cache holds derived decoder keys only (never a vending key), in this process's
        memory; it is keyed on everything the derivation reads, including the stored blob, so
        a changed key record never meets an old entry.  TIDs, floats and exactly-once do not
        depend on it: they live in the database.
        """
        ident = (key.id, key.blob, key.sgc, key.krn, key.dkga, key.ea, key.base_date,
                 key.table_set, meter.pan, meter.kt, meter.ti, meter.ken, meter.mfr_code)
        cached = self._derived.get(ident)
        if cached is not None:
            return cached
        pan: MeterPan = parse_pan(meter.pan)
        derived = MeterKey.derive(
            dkga=key.dkga, vending_key=self._unwrap(key), pan=pan, kt=meter.kt, sgc=key.sgc,
            ti=meter.ti, krn=key.krn, ea=key.ea, base_date=key.base_date,
            table_set=self._tables(key), ken=meter.ken, mfr_code=meter.mfr_code,
        )
        if len(self._derived) >= DERIVED_CACHE_SIZE:
            self._derived.clear()  # simple bound; a miss only costs a derivation
        self._derived[ident] = derived
        return derived

    def key_change_many(self, items: Sequence[KeyChangeItem]) -> list[Issue | StsError]:
        """The chunk at once (`sts.engine.keychange_batch`): per pair of keys, each vending
        key is unwrapped once and the plain meters' sets are made together; any meter that
        path does not take goes through `key_change`, one by one, as before.  The batch
        engine (numpy) is imported here, by the campaigns that use it, not by every server
        and command at start."""
        from sts.engine.keychange_batch import MeterChange
        from sts.engine.keychange_batch import key_change_many as engine_key_change_many

        out: list[Issue | StsError | None] = [None] * len(items)
        groups: dict[tuple[int, int, bool], list[int]] = {}
        for i, it in enumerate(items):  # by object: a chunk shares its key records
            groups.setdefault((id(it.old), id(it.new), it.ro), []).append(i)
        for idx in groups.values():
            first = items[idx[0]]
            try:
                sides = (self._side(first.old), self._side(first.new))
            except StsError:
                continue  # each meter meets the same error through `key_change`
            changes = []
            for i in idx:
                old, new = items[i].meter, items[i].new_meter
                if new.kt != old.kt or new.pan != old.pan:
                    break
                changes.append(MeterChange(old.pan, old.kt, old.ti, old.ken, new.ti, new.ken))
            else:
                made = engine_key_change_many(*sides, changes, ro=first.ro)
                for i, issue in zip(idx, made, strict=True):
                    out[i] = issue
        rest = [i for i, got in enumerate(out) if got is None]
        for i, got in zip(rest, super().key_change_many([items[i] for i in rest]), strict=True):
            out[i] = got
        return [got for got in out if got is not None]

    def _side(self, key: KeyRecord) -> KeySide:
        from sts.engine.keychange_batch import KeySide

        return KeySide(key.dkga, self._unwrap(key), key.sgc, key.krn, key.ea, key.base_date,
                       self._tables(key))

    def key_check_value(self, key: KeyRecord) -> str:
        from sts.vending.keys.ceremony import kcv

        raw = bytearray(self._unwrap(key))
        try:
            return kcv(bytes(raw), key.dkga)
        finally:
            raw[:] = bytes(len(raw))

    def clear_key(self, key: KeyRecord) -> bytearray:
        """The clear vending key, for moving it into another module only (`sts admin key
        migrate`); the caller wipes the buffer as soon as the key is inside."""
        return bytearray(self._unwrap(key))
