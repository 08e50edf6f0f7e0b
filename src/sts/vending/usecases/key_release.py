"""Decoder keys handed out of the security module for meters that are not real: the web
simulator's meters and the virtual AMI fleet's meter file (`sts admin meter export-sim`).
A vending key never leaves the module; each release of a file of keys is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from sts.errors import UnknownMeter
from sts.vending import audit
from sts.vending.clock import utc
from sts.vending.context import load_key
from sts.vending.keys.security_module import MeterIdentity, SecurityModule
from sts.vending.meters import meter_pan
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters, supply_groups, vending_keys


def decoder_key(conn: Connection, sm: SecurityModule, pan: str, key: dict[str, Any]) -> bytes:
    """The decoder key of meter `pan` for the identity `key` names (sgc, krn, kt, ti, ken,
    mfr_code): what the meter holds now, which may differ from the registry's after a key
    change typed into a simulated meter."""
    kid = conn.scalar(select(vending_keys.c.id)
                      .join(supply_groups, supply_groups.c.id == vending_keys.c.sgc_id)
                      .where(supply_groups.c.sgc == key["sgc"],
                             vending_keys.c.krn == key["krn"]))
    if kid is None:
        raise UnknownMeter(f"no vending key SGC {key['sgc']} KRN {key['krn']}", field="meter")
    rec = load_key(conn, int(kid)).record
    ident = MeterIdentity(pan, int(key["kt"]), int(key["ti"]), int(key["ken"]),
                          key.get("mfr_code"))
    return bytes(sm.release_decoder_key(rec, ident).decoder_key)


def export_meters(db: Database, sm: SecurityModule, pans: Sequence[str], *, actor: str,
                  now: datetime) -> list[dict[str, Any]]:
    """Meter configurations with their decoder keys (every meter when `pans` is empty), for
    virtual meters; audited with the meters named."""
    m = meters.c
    pans = [meter_pan(p, "pan") for p in pans]  # printed numbers too (the one rule)
    now = utc(now)
    with db.begin() as conn:
        stmt = select(m.pan, m.key_id, m.kt, m.ti, m.ken, m.mfr_code, m.ami).order_by(m.pan)
        if pans:
            stmt = stmt.where(m.pan.in_(list(pans)))
        rows = list(conn.execute(stmt))
        missing = sorted(set(pans) - {r.pan for r in rows})
        if missing:
            raise UnknownMeter(f"meter {missing[0]} is not registered", field="pan")
        out: list[dict[str, Any]] = []
        for r in rows:
            key = load_key(conn, r.key_id).record
            mk = sm.release_decoder_key(key, MeterIdentity(r.pan, r.kt, r.ti, r.ken, r.mfr_code))
            obj: dict[str, Any] = {"id": r.pan, "pan": r.pan, "ea": key.ea}
            if key.ea == 7:
                obj["table_set"] = key.table_set or "sample"
            obj.update(decoder_key=mk.decoder_key.hex(), dkga=key.dkga, kt=r.kt, sgc=key.sgc,
                       ti=r.ti, krn=key.krn, ken=r.ken, base_date=key.base_date)
            out.append(obj)
        audit.append(db, conn, at=now, actor=actor,
                     action="meter.export_sim", subject=f"{len(out)} meters",
                     details={"meters": [o["pan"] for o in out][:1000],
                              "count": len(out)})
    return out
