"""Key operations: the key ceremony, where each key lives, and moving keys into the module.

Faces (the CLI) only collect input and print; every rule and audit entry is here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text, update

from sts.errors import AlreadyExists, ConfigError, InputError, StsError, UnknownRecord
from sts.vending import audit
from sts.vending.context import load_key
from sts.vending.keys.ceremony import COMPONENT_COUNTS, combine, kcv, normalise_kcv, parse_component, wipe
from sts.vending.keys.security_module import KeyRecord, SecurityModule
from sts.vending.keys.software import SoftwareSecurityModule
from sts.vending.registry.admin import Registry
from sts.vending.storage.tables import supply_groups, vending_keys


def _audit(reg: Registry, action: str, subject: str, **details: Any) -> None:
    with reg.db.begin() as conn:
        audit.append(reg.db, conn, at=reg.clock().replace(microsecond=0), actor=reg.actor,
                     action=action, subject=subject, details=details)


def _key_id(reg: Registry, sgc: str, krn: int) -> int | None:
    with reg.db.read() as conn:
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == sgc))
        if sid is None:
            raise UnknownRecord(f"sgc {sgc!r} does not exist", field="sgc")
        kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                         vending_keys.c.krn == krn))
    return None if kid is None else int(kid)


def ceremony(reg: Registry, sgc: str, krn: int, *, components: int,
             read_component: Callable[[int], str], show: Callable[[dict[str, Any]], None],
             dkga: int = 4, ea: int = 7, base_date: int = 2014, key_type: str = "VUDK",
             table_set: str | None = None, ken: int = 255,
             issued_until: datetime | None = None, kct_until: datetime | None = None,
             credit_limit: Decimal | None = None, expect_kcv: str | None = None,
             make_current: bool = True) -> dict[str, Any]:
    """Take the components in turn, show their KCVs, combine them, load the key into the
    module and show its KCV as the module computes it.  Nothing of a component or the key is
    written anywhere; the audit log gets each step with its KCV only.
    """
    if components not in COMPONENT_COUNTS:
        raise InputError("--components must be 2 or 3", field="components")
    if dkga not in (2, 4):
        raise InputError("dkga must be 2 or 4", field="dkga")
    want = normalise_kcv(expect_kcv, "expect_kcv") if expect_kcv else None
    subject = f"{sgc}/{krn}"
    if _key_id(reg, sgc, krn) is not None:  # fail before any custodian types a component
        raise AlreadyExists(f"key {subject} already exists", field="krn")
    _audit(reg, "key.ceremony.start", subject, components=components, dkga=dkga,
           module=reg.sm.name)
    parts: list[bytearray] = []
    shown: list[dict[str, Any]] = []
    combined = bytearray()
    try:
        for n in range(1, components + 1):
            part = parse_component(read_component(n), dkga, n)
            parts.append(part)
            item = {"component": n, "kcv": kcv(bytes(part), dkga)}
            shown.append(item)
            show(item)
            _audit(reg, "key.ceremony.component", subject, **item)
        combined = combine(parts)
        wipe(*parts)
        host_kcv = kcv(bytes(combined), dkga)
        if want is not None and host_kcv != want:
            raise InputError(f"the combined key's KCV is {host_kcv}, the letter says {want}: "
                             "nothing was stored; check the components", field="expect_kcv")
        reg.add_key(sgc, krn, dkga=dkga, ea=ea, base_date=base_date, key_type=key_type,
                    table_set=table_set, ken=ken, issued_until=issued_until,
                    kct_until=kct_until, credit_limit=credit_limit, raw=bytes(combined),
                    make_current=make_current)
    except StsError as exc:
        _audit(reg, "key.ceremony.abort", subject, code=exc.code, field=exc.field or "")
        raise
    finally:
        wipe(combined, *parts)
    with reg.db.begin() as conn:
        record = load_key(conn, _key_id(reg, sgc, krn) or 0).record
    module_kcv = reg.sm.key_check_value(record)
    if module_kcv != host_kcv:  # the module holds something else: never leave it current
        raise ConfigError(f"the module's KCV {module_kcv} differs from the components' "
                          f"{host_kcv}", field="kcv")
    result = {"sgc": sgc, "krn": krn, "dkga": dkga, "components": shown, "kcv": module_kcv,
              "module": record.module, "location": location(reg.sm, record)}
    show({"key": subject, "kcv": module_kcv, "module": record.module})
    _audit(reg, "key.ceremony.done", subject, kcv=module_kcv, module=record.module)
    return result


def location(sm: SecurityModule, key: KeyRecord) -> str:
    """Where a key lives: `software (KEK <id>)` or `pkcs11:<token>:<label>`."""
    where = getattr(sm, "location", None)
    if callable(where):
        return str(where(key))
    if isinstance(sm, SoftwareSecurityModule) and key.module == sm.name:
        return f"software (KEK {sm.kek_id})"
    if key.module == "pkcs11":
        from sts.vending.keys.pkcs11 import blob_label

        return f"pkcs11:?:{blob_label(key.blob)}"
    return key.module


def _records(reg: Registry) -> list[KeyRecord]:
    with reg.db.read() as conn:
        ids = [int(r.id) for r in conn.execute(select(vending_keys.c.id)
                                               .order_by(vending_keys.c.id))]
        return [load_key(conn, i).record for i in ids]


def list_keys(reg: Registry, *, check: bool = False) -> list[dict[str, Any]]:
    """Every key's attributes and location; with `check`, its KCV from where it lives (which
    also proves the module holds it)."""
    places = {(r.sgc, r.krn): r for r in _records(reg)}
    out = []
    for row in reg.list_keys():
        rec = places[(row["sgc"], row["krn"])]
        row = dict(row, location=location(reg.sm, rec))
        if check:
            try:
                row["kcv"] = reg.sm.key_check_value(rec)
            except StsError as exc:
                row["kcv"] = None
                row["error"] = {"code": exc.code, "message": exc.message}
        out.append(row)
    return out


def migrate(reg: Registry, *, to: str = "pkcs11",
            progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Move every software-held DKGA04 key into the PKCS#11 module.

    Per key: the module takes the key through C_UnwrapKey (docs: why SoftHSM2 needs the
    one-time transport key), its KCV from the module must equal the software KCV, then one
    transaction points the record at the module and overwrites the software blob.  A key whose
    record changed meanwhile is left alone and its new module object destroyed.  Afterwards the
    database is compacted so the old blobs do not linger in free pages.
    """
    from sts.vending.keys.pkcs11 import Pkcs11SecurityModule

    if to != "pkcs11":
        raise InputError("keys can be migrated to pkcs11 only", field="to")
    sm = reg.sm
    if not isinstance(sm, Pkcs11SecurityModule):
        raise ConfigError("select the PKCS#11 module (STS_SECURITY_MODULE=pkcs11 or "
                          "--security-module pkcs11) to migrate keys into it",
                          field="security_module")
    moved, skipped = [], []
    for rec in _records(reg):
        if rec.module == sm.name:
            continue
        subject = f"{rec.sgc}/{rec.krn}"
        if rec.dkga != 4:
            item = {"key": subject, "status": "skipped",
                    "reason": "DKGA02 keys cannot be held in a PKCS#11 module"}
            skipped.append(item)
            if progress:
                progress(item)
            continue
        software = sm.software_for(rec)
        if not isinstance(software, SoftwareSecurityModule):
            raise ConfigError(f"key {subject} is held by {rec.module!r}", field="key")
        before = software.key_check_value(rec)
        clear = software.clear_key(rec)
        try:
            blob = sm.import_key(bytes(clear), sgc=rec.sgc, krn=rec.krn, dkga=rec.dkga)
        finally:
            wipe(clear)
        new_rec = KeyRecord(rec.id, rec.sgc, rec.krn, rec.key_type, rec.dkga, rec.ea,
                            rec.base_date, rec.table_set, sm.name, blob)
        after = sm.key_check_value(new_rec)
        if after != before:
            sm.destroy_key(new_rec)
            raise ConfigError(f"key {subject}: the module's KCV {after} differs from the "
                              f"software KCV {before}; nothing changed", field="kcv")
        with reg.db.begin() as conn:
            done = conn.execute(
                update(vending_keys)
                .where(vending_keys.c.id == rec.id, vending_keys.c.module == rec.module,
                       vending_keys.c.blob == rec.blob)
                .values(module=sm.name, blob=blob)).rowcount
            if done == 1:
                audit.append(reg.db, conn, at=reg.clock().replace(microsecond=0),
                             actor=reg.actor, action="key.migrate", subject=subject,
                             details={"from": rec.module, "to": sm.name, "kcv": after,
                                      "location": sm.location(new_rec)})
        if done != 1:
            sm.destroy_key(new_rec)
            item = {"key": subject, "status": "skipped", "reason": "the record changed"}
            skipped.append(item)
        else:
            item = {"key": subject, "status": "moved", "kcv": after,
                    "location": sm.location(new_rec)}
            moved.append(item)
        if progress:
            progress(item)
    if moved:
        compact(reg)
    left = sum(1 for r in _records(reg) if r.module == "software")
    return {"moved": len(moved), "skipped": len(skipped), "software_keys_left": left,
            "keys": moved + skipped,
            "note": ("no key is held in software any more: the KEK file can be destroyed"
                     if left == 0 else "keys left in software still need the KEK")}


def compact(reg: Registry) -> None:
    """Rewrite the key table's storage so overwritten blobs leave no copy in free pages."""
    db = reg.db
    if db.is_sqlite:
        with db.engine.connect() as conn:  # outside any transaction, as VACUUM requires
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute("VACUUM")
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                cur.close()
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL vending_keys"))
