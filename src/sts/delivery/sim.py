"""`sts admin meter export-sim`: the meter file a test rig needs to run the utility's meters
as virtual AMI meters (`sts fleet ami`).

Each line is a FORMAT.md meter object in key-only form (the meter's decoder key and its
identity; never the vending key) plus `"id"` (the PAN).  A decoder key opens only its own
meter, but it is still key material: the export is for administrators only, is audited with
the meters it covered, and the file is created readable by its owner alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sts.errors import NotSupported, UnknownMeter
from sts.vending import audit
from sts.vending.clock import utc
from sts.vending.db import Database
from sts.vending.keys import MeterIdentity, SecurityModule
from sts.vending.meters import meter_pan
from sts.vending.models import meters
from sts.vending.service import load_key


def export_sim(db: Database, sm: SecurityModule, pans: Sequence[str], *, actor: str,
               now: datetime) -> list[dict[str, Any]]:
    derive = getattr(sm, "meter_key", None)
    if derive is None:
        raise NotSupported("this security module does not release decoder keys", field="module")
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
            mk = derive(key, MeterIdentity(r.pan, r.kt, r.ti, r.ken, r.mfr_code))
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


def write_jsonl(path: str, objs: list[dict[str, Any]]) -> None:
    """Owner-only file, written whole then renamed into place."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for obj in objs:
            fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
    os.replace(tmp, target)
