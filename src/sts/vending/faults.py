"""Meter fault reports (a POS reporting a damaged, dead or misconfigured meter to the utility).

Each report gets a reference the customer can quote; a repeated request id returns the same
report.  Reports are audited and stay open until the utility's back office closes them.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from sts.errors import Unavailable, UnknownMeter
from sts.vending import audit
from sts.vending.access.policy import Caller
from sts.vending.clock import Clock
from sts.vending.i18n import N_
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters
from sts.vending.storage.tables_clients import fault_reports


def _view(row: Any, pan: str) -> dict[str, Any]:
    return {"reference": row.reference, "request_id": row.request_id, "meter": pan,
            "fault_type": row.fault_type, "description": row.description,
            "contact_number": row.contact_number, "status": row.status,
            "created_at": row.created_at.isoformat()}


def report(db: Database, clock: Clock, *, request_id: str, pan: str, fault_type: str,
           description: str, contact_number: str, customer: dict[str, Any] | None,
           caller: Caller) -> tuple[dict[str, Any], bool]:
    """(the report, created)."""
    caller.require("lookup")
    now = clock().replace(microsecond=0)
    f = fault_reports.c
    for _ in range(3):
        try:
            with db.begin() as conn:
                old = conn.execute(select(fault_reports).where(f.request_id == request_id)
                                   ).first()
                if old is not None:
                    return _view(old, pan), False
                mid = conn.scalar(select(meters.c.id).where(meters.c.pan == pan))
                if mid is None:
                    raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field="meter")
                reference = "FR" + secrets.token_hex(5).upper()
                conn.execute(insert(fault_reports).values(
                    request_id=request_id, reference=reference, meter_id=mid,
                    vendor_id=caller.vendor_id, fault_type=fault_type,
                    description=description[:160], contact_number=contact_number[:20],
                    customer=json.dumps(customer or {}, sort_keys=True), status="open",
                    created_at=now))
                audit.append(db, conn, at=now, actor=caller.actor, action="fault_report",
                             subject=pan, details={"reference": reference,
                                                   "fault_type": fault_type})
                row = conn.execute(select(fault_reports).where(f.request_id == request_id)
                                   ).one()
                return _view(row, pan), True
        except IntegrityError:  # a twin request won the insert, or a reference clashed
            continue
    raise Unavailable("the fault report could not be stored; repeat the request")
