"""Four-eyes on money: a float top-up above the utility's approval amount is recorded as a
request and moves the float only when a second operator approves it.

Every face that tops up a float (the back office's vendors page, `sts admin vendor topup`)
calls `request_top_up`: at or below the amount it takes effect at once, above it waits.
`decide` approves or rejects a waiting request; the approver must be another operator than
the one who asked, whose role the access policy allows `approve_top_up`, and who answers for
every vendor (a supervisor bound to a vendor never approves money into a float).  The request,
the decision and the movement are audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update

from sts.errors import InputError, NotAuthorised, UnknownRecord
from sts.vending.access.policy import EVERY_VENDOR, Caller
from sts.vending.floats import needs_approval
from sts.vending.i18n import N_
from sts.vending.registry.admin import Registry, check_float_move
from sts.vending.storage.database import Database
from sts.vending.storage.tables import vendors
from sts.vending.storage.tables_office import float_requests
from sts.vending.tariff import money

APPROVE = "approve_top_up"  # the access policy's action


@dataclass(frozen=True)
class TopUp:
    """What a top-up did: applied (the new balance) or waiting (the request's number)."""

    state: str  # applied / pending / approved / rejected
    balance: Decimal | None = None
    request_id: int | None = None
    limit: Decimal | None = None


def request_top_up(reg: Registry, vendor: str, amount: str, reference: str) -> TopUp:
    """A top-up as an operator asks for it: applied at once, or (above the approval amount)
    recorded as pending for a second approver."""
    value, reference = check_float_move(amount, reference, "top_up")
    now = reg._now()
    with reg.db.begin() as conn:
        limit = needs_approval(conn, vendor, value, "top_up")
        if limit is None:
            return TopUp("applied", balance=reg.move_float(conn, vendor, value, reference,
                                                           "top_up"))
        vid = conn.scalar(select(vendors.c.id).where(vendors.c.name == vendor))
        if vid is None:
            raise UnknownRecord(N_("vendor {name} does not exist"), field="vendor",
                                name=repr(vendor))
        rid = int(conn.execute(insert(float_requests).values(
            vendor_id=vid, amount=value, reference=reference, requested_by=reg.actor,
            requested_at=now, state="pending", reason="").returning(float_requests.c.id))
            .scalar_one())
        reg._audit(conn, "vendor.top_up_requested", vendor, request=rid, amount=money(value),
                   reference=reference, approval_above=money(limit))
    return TopUp("pending", request_id=rid, limit=limit)


def decide(reg: Registry, request_id: int, approver: Caller, *, approve: bool,
           reason: str = "") -> TopUp:
    """Approve (the float moves now) or reject (with a reason) a pending top-up."""
    approver.require(APPROVE)
    if approver.vendor_scope() is not EVERY_VENDOR:
        raise NotAuthorised(N_("only an operator who answers for every vendor approves top-ups"),
                            field="authorization")
    reason = (reason or "").strip()
    if not approve and not 3 <= len(reason) <= 300:
        raise InputError(N_("give a reason for rejecting the top-up (3-300 characters)"),
                         field="reason")
    f = float_requests.c
    with reg.db.begin() as conn:
        row = conn.execute(reg.db.locked(
            select(f.id, f.amount, f.reference, f.requested_by, f.state, vendors.c.name)
            .join(vendors, vendors.c.id == f.vendor_id).where(f.id == request_id))).first()
        if row is None:
            raise UnknownRecord(N_("no top-up request {request}"), field="request",
                                request=request_id)
        if row.state != "pending":
            raise InputError(N_("top-up request {request} is already {state}"),
                             field="request", request=request_id, state=row.state)
        if row.requested_by == reg.actor:
            raise NotAuthorised(N_("a top-up you asked for needs another operator's approval"),
                                field="authorization")
        state = "approved" if approve else "rejected"
        conn.execute(update(float_requests).where(f.id == request_id).values(
            state=state, decided_by=reg.actor, decided_at=reg._now(), reason=reason))
        reg._audit(conn, f"vendor.top_up_{state}", row.name, request=request_id,
                   amount=money(Decimal(row.amount)), requested_by=row.requested_by,
                   reason=reason)
        balance = None
        if approve:
            balance = reg.move_float(conn, row.name, Decimal(row.amount),
                                     row.reference, "top_up", actor=row.requested_by)
    return TopUp(state, balance=balance, request_id=request_id)


def requests(db: Database, *, state: str | None = "pending",
             limit: int = 100) -> list[dict[str, Any]]:
    """Top-up requests (the pending ones by default), newest first."""
    f = float_requests.c
    q = (select(f.id, f.amount, f.reference, f.requested_by, f.requested_at, f.state,
                f.decided_by, f.decided_at, f.reason, vendors.c.name.label("vendor"))
         .join(vendors, vendors.c.id == f.vendor_id).order_by(f.id.desc()).limit(limit))
    if state is not None:
        q = q.where(f.state == state)
    with db.read() as conn:
        rows = conn.execute(q).all()
    return [{"id": r.id, "vendor": r.vendor, "amount": money(Decimal(r.amount)),
             "reference": r.reference, "requested_by": r.requested_by,
             "requested_at": _when(r.requested_at), "state": r.state,
             "decided_by": r.decided_by or "", "decided_at": _when(r.decided_at),
             "reason": r.reason} for r in rows]


def _when(t: datetime | None) -> str:
    return "" if t is None else t.isoformat(sep=" ", timespec="minutes")
