"""Token deliveries as callers see them: the list (operators watch it; no tokens in it), the
latest rejected deliveries (a report), and a resend of a sale's tokens to a channel.

Who sees what is the access policy's (`access.policy`): a caller bound to a vendor sees and
resends only that vendor's sales; utility-wide roles see every delivery; only sellers resend
(an engineer may watch deliveries but never send a sale's tokens anywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select

from sts.vending import outbox
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.context import ServiceContext
from sts.vending.ledger import check_request_id
from sts.vending.listing import ListSpec, Page, PageRequest, digits_of, fetch, like_pattern
from sts.vending.storage.tables import meters, transactions
from sts.vending.storage.tables_delivery import deliveries

PAGE_MAX = 1000
REJECTED_MAX = 1000
d = deliveries.c
REJECTED = ListSpec(sorts={"latest": [d.id], "attempts": [d.attempts, d.id]},
                    default="latest", default_desc=True)


def list_deliveries(svc: ServiceContext, caller: Caller, *, status: str | None = None,
                    channel: str | None = None, meter: str | None = None,
                    purchase_id: str | None = None, after_id: int = 0,
                    limit: int = 100) -> dict[str, Any]:
    """One page of delivery jobs, oldest first, with the id to continue after."""
    caller.require("deliveries")
    with svc.db.read() as conn:
        items = outbox.list_deliveries(conn, status=status, channel=channel, meter=meter,
                                       request_id=purchase_id,
                                       vendor_id=vendor_filter(caller.vendor_scope()),
                                       after_id=after_id, limit=limit)
    return {"deliveries": items,
            "next_after_id": items[-1]["id"] if len(items) == limit else None}


def rejected(svc: ServiceContext, caller: Caller) -> list[dict[str, Any]]:
    """The latest deliveries a meter refused, newest first (the reports page)."""
    caller.require("deliveries")
    with svc.db.read() as conn:
        return outbox.list_deliveries(conn, status="rejected",
                                      vendor_id=vendor_filter(caller.vendor_scope()),
                                      limit=REJECTED_MAX, newest_first=True)


def rejected_page(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the deliveries a meter refused (latest first) in the caller's scope:
    search by meter number as printed (any run of its digits), purchase id, channel or the
    meter's reason."""
    caller.require("deliveries")
    req = PageRequest.parse(params, REJECTED)
    ids = select(d.id).select_from(deliveries).where(d.status == "rejected")
    scope = vendor_filter(caller.vendor_scope())
    if scope is not None:
        ids = ids.where(d.txn_seq.in_(select(transactions.c.seq)
                                      .where(transactions.c.vendor_id == scope)))
    if req.q:
        pattern = like_pattern(req.q)
        words = [func.lower(col).like(pattern, escape="\\")
                 for col in (d.request_id, d.channel, d.reason)]
        digits = digits_of(req.q)
        if digits is not None:
            words.append(d.meter_id.in_(select(meters.c.id).where(
                meters.c.pan.like(like_pattern(digits), escape="\\"))))
        ids = ids.where(or_(*words))
    with svc.db.read() as conn:
        return fetch(conn, REJECTED, req, ids, filtered=bool(req.q), load=outbox.by_ids)


def resend(svc: ServiceContext, caller: Caller, purchase_id: str, channel: Any, to: Any,
           lang: Any) -> dict[str, Any]:
    """A new delivery job for a sale's tokens (same tokens, new attempt), audited."""
    caller.require("resend")
    check_request_id(purchase_id, "purchase_id")
    now = svc.now()
    with svc.db.begin() as conn:
        return outbox.resend(svc.db, conn, purchase_id, channel, to, lang, actor=caller.actor,
                             vendor_id=vendor_filter(caller.vendor_scope()), now=now)
