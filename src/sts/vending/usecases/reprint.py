"""Reprints of a sale and the stored answer of a purchase (what a client asks after a
timeout), with the sale's state: issued, confirmed (by a switch's advice) or reversed.  A
vendor sees only its own sales; a reversed sale reprints with its tokens cancelled."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sts.errors import InputError, UnknownRecord
from sts.vending import advices, audit, receipts
from sts.vending import outbox as delivery_outbox
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.ledger import check_request_id, stored
from sts.vending.meters import read_meter
from sts.vending.storage.tables import transactions

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def get_purchase(svc: ServiceContext, purchase_id: str, caller: Caller) -> dict[str, Any]:
    caller.require("read_sale")
    check_request_id(purchase_id, "purchase_id")
    with svc.db.read() as conn:
        cur = svc.hot.cursor(conn)
        try:
            found = stored(svc.hot, cur, purchase_id)
        finally:
            cur.close()
        # token delivery: each channel's status, read with the purchase
        delivery = delivery_outbox.for_request(conn, purchase_id) if found is not None else []
    if found is None or found.kind != "sale" or not caller.sees(found.vendor_id):
        raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
    out: dict[str, Any] = json.loads(found.response)
    out["status"] = found.status
    advice = advices.state(svc.db, purchase_id)  # confirmed / reversed by a switch's advice
    out["state"] = "reversed" if found.status == "reversed" else (
        "confirmed" if advice is not None and advice["state"] == "confirmed" else "issued")
    if advice is not None:
        out["advice"] = advice
    out["delivery"] = delivery
    return out


RECEIPT_DIGITS = 10
SEQ_MAX = 2**31 - 1  # transactions.seq is a 32-bit integer on PostgreSQL


def _receipt_no(value: object) -> int | None:
    """The transaction number of a receipt number (10 digits), None if no receipt can have it."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() \
            or len(text) > RECEIPT_DIGITS:
        raise InputError(f"receipt_no must be the receipt number: up to {RECEIPT_DIGITS} digits",
                         field="receipt_no")
    seq = int(text)
    return seq if 0 < seq <= SEQ_MAX else None


def reprint(svc: ServiceContext, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    caller.require("reprint")
    meter, receipt_no = body.get("meter"), body.get("receipt_no")
    t = transactions.c
    with svc.db.begin() as conn:
        stmt = select(t.seq, t.request_id, t.response, t.status, t.vendor_id, t.meter_id)
        if receipt_no is not None:
            seq = _receipt_no(receipt_no)
            if seq is None:
                raise UnknownRecord("no such purchase to reprint", field="receipt_no")
            stmt = stmt.where(t.seq == seq, t.kind == "sale")
        elif meter is not None:
            cur = svc.hot.cursor(conn)
            try:
                m = read_meter(svc.hot, cur, meter, lock=False)
            finally:
                cur.close()
            stmt = stmt.where(t.meter_id == m.id, t.kind == "sale").order_by(t.seq.desc())
        else:
            raise InputError("give meter or receipt_no", field="meter")
        scope = vendor_filter(caller.vendor_scope())
        if scope is not None:  # a vendor's caller reprints its own sales only
            stmt = stmt.where(t.vendor_id == scope)
        row = conn.execute(stmt.limit(1)).first()
        if row is None or not caller.sees(row.vendor_id):
            raise UnknownRecord("no such purchase to reprint", field="receipt_no")
        audit.append(svc.db, conn, at=svc.now(), actor=caller.actor, action="reprint",
                     subject=row.request_id, details={"receipt_no": f"{row.seq:010d}"})
    out: dict[str, Any] = json.loads(row.response)
    out["reprint"] = True
    out["status"] = row.status
    if row.status == "reversed":
        for tok in out["tokens"]:
            tok["token"] = "0" * 20
        out["slip"] = "REVERSED - TOKENS CANCELLED\n"
    else:
        out["slip"] = receipts.slip(out["receipt"], out["tokens"],
                                    title="REPRINT - COPY OF TAX INVOICE",
                                    _=receipts.words_of(out["receipt"]))
    return out
