"""A meter's page and a customer's page: everything known about one record, as the caller's
role may see it.

A meter: identity, customer, tariff, key (SGC/KRN/TI, whether a key change is due), status
with its block history (from the audit log), its sales page by page with their tokens
(`read_sale`; a vendor-bound caller sees its vendor's sales only), deliveries and their
states, engineering and key change tokens (`engineering_tokens`).  The internal note of a
block is for the back office (`block_note`), never the counter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from sts.errors import UnknownRecord
from sts.vending import outbox
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.context import ServiceContext
from sts.vending.listing import ListSpec, Page, PageRequest, fetch, in_order
from sts.vending.meters import meter_pan
from sts.vending.storage.tables import (
    audit_log,
    customers,
    meters,
    supply_groups,
    tariffs,
    tokens,
    transactions,
    vending_keys,
    vendors,
)
from sts.vending.tariff import money
from sts.vending.usecases.lists import printed

t = transactions.c
SALES = ListSpec(sorts={"receipt": [t.seq]}, default="receipt",
                 default_desc=True, labels={"receipt": "Receipt"})
SALE_KINDS = ("sale", "reversal")
ENGINEERING_KINDS = ("engineering", "key_change")
RECENT = 50


def _plain(row: Any) -> dict[str, Any]:
    return {k: money(v) if isinstance(v, Decimal) else v for k, v in row._mapping.items()}


def _tokens(conn: Connection, seqs: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not seqs:
        return out
    k = tokens.c
    for r in conn.execute(select(k.txn_seq, k.token, k.kind, k.description, k.tid, k.status)
                          .where(k.txn_seq.in_(seqs)).order_by(k.txn_seq, k.position)):
        out.setdefault(r.txn_seq, []).append(
            {"token": r.token, "kind": r.kind, "description": r.description, "tid": r.tid,
             "status": r.status})
    return out


def _transaction_rows(conn: Connection, seqs: list[Any], with_tokens: bool
                      ) -> list[dict[str, Any]]:
    rows = conn.execute(select(t.seq, t.request_id, t.kind, t.amount, t.vat, t.charges, t.debt,
                               t.units, t.status, t.reverses, t.created_at,
                               vendors.c.name.label("vendor"))
                        .outerjoin(vendors, vendors.c.id == t.vendor_id)
                        .where(t.seq.in_(seqs))).all()
    out = [_plain_dict(r) for r in in_order(rows, seqs, key="seq")]
    found = _tokens(conn, list(seqs)) if with_tokens else {}
    for r in out:
        r["receipt_no"] = f"{r['seq']:010d}"
        r["tokens"] = found.get(r["seq"], [])
    return out


def _plain_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {k: money(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _identity(conn: Connection, pan: str) -> dict[str, Any]:
    m, k, sg = meters.c, vending_keys.c, supply_groups.c
    row = conn.execute(
        select(m.id, m.pan, m.mfr_code, m.service, m.kt, m.ti, m.ken, m.status,
               m.status_reason, m.last_tid, m.tid_epoch, m.created_at, m.ami, m.key_id,
               sg.sgc, sg.current_key_id, k.krn, k.base_date, k.ea, k.dkga, k.key_type,
               tariffs.c.name.label("tariff"), customers.c.account_no,
               customers.c.name.label("customer"), customers.c.address, customers.c.phone)
        .join(supply_groups, sg.id == m.sgc_id).join(vending_keys, k.id == m.key_id)
        .join(tariffs, tariffs.c.id == m.tariff_id)
        .outerjoin(customers, customers.c.id == m.customer_id)
        .where(m.pan == pan)).first()
    if row is None:
        raise UnknownRecord(f"meter {printed(pan)} is not registered", field="meter")
    out = dict(row._mapping)
    out["number"] = printed(pan)
    due = row.current_key_id is not None and row.current_key_id != row.key_id
    out["key_change_due"] = due
    out["to_krn"] = (conn.scalar(select(k.krn).where(k.id == row.current_key_id))
                     if due else None)
    return out


def meter_record(svc: ServiceContext, caller: Caller, meter: str,
                 params: Mapping[str, str]) -> dict[str, Any]:
    """Everything the caller may see of one meter; its sales one page at a time."""
    caller.require("meter_record")
    pan = meter_pan(meter, "meter")
    req = PageRequest.parse(params, SALES)
    vendor_id = vendor_filter(caller.vendor_scope())
    read_tokens = caller.may("read_sale")
    with svc.db.read() as conn:
        ident = _identity(conn, pan)
        if not caller.may("block_note"):
            ident["status_reason"] = ""
        mid = ident.pop("id")
        sales = select(t.seq).where(t.meter_id == mid, t.kind.in_(SALE_KINDS))
        if vendor_id is not None:
            sales = sales.where(t.vendor_id == vendor_id)
        page = fetch(conn, SALES, req, sales, filtered=False,
                     load=lambda c, seqs: _transaction_rows(c, seqs, read_tokens))
        notes = caller.may("block_note")
        history = [{"seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action,
                    "reason": _reason(r.details) if notes else ""} for r in conn.execute(
            select(audit_log.c.seq, audit_log.c.at, audit_log.c.actor, audit_log.c.action,
                   audit_log.c.details)
            .where(audit_log.c.subject == pan,
                   audit_log.c.action.in_(("meter.blocked", "meter.active")))
            .order_by(audit_log.c.seq.desc()).limit(RECENT))]
        engineering: list[dict[str, Any]] = []
        if caller.may("engineering_tokens"):
            seqs = list(conn.scalars(select(t.seq).where(t.meter_id == mid,
                                                         t.kind.in_(ENGINEERING_KINDS))
                                     .order_by(t.seq.desc()).limit(RECENT)))
            engineering = _transaction_rows(conn, seqs, True) if seqs else []
        delivered = (outbox.list_deliveries(conn, meter=pan, vendor_id=vendor_id, limit=RECENT,
                                            newest_first=True)
                     if caller.may("deliveries") else [])
    return {"meter": ident, "sales": page, "blocks": history, "engineering": engineering,
            "deliveries": delivered, "tokens_shown": read_tokens, "notes_shown": notes,
            "engineering_shown": caller.may("engineering_tokens"),
            "customer_link": caller.may("customer_record")}


def _reason(details: str) -> str:
    try:
        found = json.loads(details)
    except ValueError:
        return ""
    return str(found.get("reason", "")) if isinstance(found, dict) else ""


def customer_record(svc: ServiceContext, caller: Caller, account_no: str,
                    params: Mapping[str, str]) -> dict[str, Any]:
    """A customer, their meters and the latest sales to their meters the caller may see."""
    caller.require("customer_record")
    c, m = customers.c, meters.c
    req = PageRequest.parse(params, SALES)
    vendor_id = vendor_filter(caller.vendor_scope())
    with svc.db.read() as conn:
        row = conn.execute(select(c.id, c.account_no, c.name, c.address, c.phone,
                                  c.debt_balance).where(c.account_no == account_no)).first()
        if row is None:
            raise UnknownRecord(f"no customer with account {account_no}", field="account")
        customer = _plain(row)
        owned = [dict(r._mapping) | {"number": printed(r.pan)} for r in conn.execute(
            select(m.id, m.pan, m.status, m.service, tariffs.c.name.label("tariff"))
            .join(tariffs, tariffs.c.id == m.tariff_id)
            .where(m.customer_id == row.id).order_by(m.pan).limit(200))]
        sales = select(t.seq).where(t.meter_id.in_([x["id"] for x in owned]),
                                    t.kind.in_(SALE_KINDS))
        if vendor_id is not None:
            sales = sales.where(t.vendor_id == vendor_id)
        page: Page = fetch(conn, SALES, req, sales, filtered=False,
                           load=lambda cn, seqs: _sale_meters(cn, seqs))
    return {"customer": customer, "meters": owned, "sales": page}


def _sale_meters(conn: Connection, seqs: list[Any]) -> list[dict[str, Any]]:
    rows = _transaction_rows(conn, seqs, False)
    pans = {r.seq: r.pan for r in conn.execute(
        select(t.seq, meters.c.pan).join(meters, meters.c.id == t.meter_id)
        .where(t.seq.in_(seqs)))}
    for r in rows:
        r["number"] = printed(pans.get(r["seq"], ""))
        r["pan"] = pans.get(r["seq"], "")
    return rows
