"""The morning reports as a caller may read them: sales by day / vendor / SGC, the vendor
float reconciliation, meters due a key change and (for
auditors and admins) the hash chains' verdict.  A caller bound to a vendor reads its own
vendor's figures only (`access.policy`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sts.vending import audit, reports
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.context import ServiceContext


def report(svc: ServiceContext, caller: Caller, start: datetime, end: datetime,
           by: str) -> dict[str, Any]:
    caller.require("reports")
    scope = vendor_filter(caller.vendor_scope())
    db = svc.db
    sales = reports.sales(db, start, end, by, vendor_id=scope)
    return {
        "sales": sales,
        "days": sales if by == "day" else reports.sales(db, start, end, "day", vendor_id=scope),
        "recon": reports.reconciliation(db, start, end, vendor_id=scope),
        "due": reports.key_change_due(db),
        "check": audit.verify(db).as_dict() if caller.may("audit") else None,
    }
