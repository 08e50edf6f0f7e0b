"""The back office's other lists as pages (`sts.vending.listing`): vendors, operators, API
keys, the sales a supervisor reverses from and the mobile-money payments.  Each names its
sorts (a unique tie-break last) and what its search matches; the access policy's checks and
vendor scope are the same as the whole lists had.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from sts.errors import InputError, UnknownRecord
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.access.usernames import username_key
from sts.vending.context import ServiceContext
from sts.vending.i18n import N_
from sts.vending.listing import ListSpec, Page, PageRequest, digits_of, fetch, in_order, like_pattern
from sts.vending.storage.tables import (
    api_keys,
    meters,
    operators,
    supply_groups,
    transactions,
    vendor_sgcs,
    vendors,
)
from sts.vending.storage.tables_office import operator_credentials, web_sessions
from sts.vending.storage.tables_payments import payments
from sts.vending.tariff import money
from sts.vending.usecases import payments as payment_usecases
from sts.vending.usecases.lists import printed

v, o, k, t, p = vendors.c, operators.c, api_keys.c, transactions.c, payments.c

VENDORS = ListSpec(sorts={"name": [v.name], "status": [v.status, v.name],
                          "float": [v.float_balance, v.id]}, default="name")
OPERATORS = ListSpec(sorts={"username": [o.username], "name": [o.name, o.id],
                            "role": [o.role, o.username]}, default="username")
KEYS = ListSpec(sorts={"created": [k.created_at, k.id], "role": [k.role, k.id],
                       "label": [k.label, k.id]}, default="created", default_desc=True)
SALES = ListSpec(sorts={"receipt": [t.seq], "amount": [t.amount, t.seq]}, default="receipt",
                 default_desc=True)


def _contains(q: str, *cols: Any) -> ColumnElement[bool]:
    pattern = like_pattern(q)
    return or_(*[func.lower(col).like(pattern, escape="\\") for col in cols])


def _vendor_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(v.id, v.name, v.address, v.float_balance, v.status)
                        .where(v.id.in_(ids))).all()
    sgcs: dict[int, list[str]] = {}
    for r in conn.execute(select(vendor_sgcs.c.vendor_id, supply_groups.c.sgc)
                          .join(supply_groups, supply_groups.c.id == vendor_sgcs.c.sgc_id)
                          .where(vendor_sgcs.c.vendor_id.in_(ids))):
        sgcs.setdefault(r.vendor_id, []).append(r.sgc)
    out = in_order(rows, ids)
    for row in out:
        row["float_balance"] = money(Decimal(row["float_balance"]))
        row["sgcs"] = sorted(sgcs.get(row["id"], []))
    return out


def list_vendors(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the vendors (administrators): search by name or address."""
    caller.require("admin")
    req = PageRequest.parse(params, VENDORS)
    ids = select(v.id).select_from(vendors)
    if req.q:
        ids = ids.where(_contains(req.q, v.name, v.address))
    with svc.db.read() as conn:
        return fetch(conn, VENDORS, req, ids, filtered=bool(req.q), load=_vendor_rows)


def _operator_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    c = operator_credentials.c
    rows = conn.execute(
        select(o.id, o.username, o.name, o.role, o.active, vendors.c.name.label("vendor"),
               c.locked_until, c.last_login_at, c.failed_count, c.changed_at,
               c.operator_id.is_not(None).label("has_password"))
        .outerjoin(vendors, vendors.c.id == o.vendor_id)
        .outerjoin(operator_credentials, c.operator_id == o.id)
        .where(o.id.in_(ids))).all()
    return in_order(rows, ids)


def list_operators(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the operator accounts: search by username, name, role or vendor."""
    caller.require("people")
    req = PageRequest.parse(params, OPERATORS)
    ids = select(o.id).select_from(operators)
    if req.q:
        ids = ids.outerjoin(vendors, vendors.c.id == o.vendor_id).where(
            _contains(req.q, o.username, o.name, o.role, vendors.c.name))
    with svc.db.read() as conn:
        return fetch(conn, OPERATORS, req, ids, filtered=bool(req.q), load=_operator_rows)


def operator_record(svc: ServiceContext, caller: Caller, username: str) -> dict[str, Any]:
    """One operator as the administrator's page shows it (the list's row, with when the
    password was set and how many sessions are open; never the hash), or UnknownRecord."""
    caller.require("people")
    with svc.db.read() as conn:
        oid = conn.scalar(select(o.id).where(o.username_key == username_key(username)))
        if oid is None:
            raise UnknownRecord(N_("operator {name} does not exist"), field="username",
                                name=repr(username))
        row = _operator_rows(conn, [oid])[0]
        row["sessions"] = conn.scalar(select(func.count()).select_from(web_sessions)
                                      .where(web_sessions.c.operator_id == oid))
    return row


def _key_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(k.id, k.prefix, k.role, k.label, k.created_at, k.revoked_at,
                               vendors.c.name.label("vendor"),
                               operators.c.username.label("operator"))
                        .outerjoin(vendors, vendors.c.id == k.vendor_id)
                        .outerjoin(operators, operators.c.id == k.operator_id)
                        .where(k.id.in_(ids))).all()
    return in_order(rows, ids)


def list_api_keys(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the integrators' API keys (not the web sessions' own keys): search by
    label, prefix, role or vendor."""
    caller.require("people")
    req = PageRequest.parse(params, KEYS)
    ids = select(k.id).select_from(api_keys).where(~k.label.like("web:%"))
    if req.q:
        ids = ids.outerjoin(vendors, vendors.c.id == k.vendor_id).where(
            _contains(req.q, k.label, k.prefix, k.role, vendors.c.name))
    with svc.db.read() as conn:
        return fetch(conn, KEYS, req, ids, filtered=bool(req.q), load=_key_rows)


def _sale_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(t.seq.label("id"), t.request_id, t.amount, t.units, t.status,
                               t.created_at, meters.c.pan, vendors.c.name.label("vendor"))
                        .join(meters, meters.c.id == t.meter_id)
                        .outerjoin(vendors, vendors.c.id == t.vendor_id)
                        .where(t.seq.in_(ids))).all()
    out = in_order(rows, ids)
    for r in out:
        r["receipt_no"] = f"{r['id']:010d}"
        r["amount"] = money(Decimal(r["amount"]))
        r["units"] = str(Decimal(r["units"]).quantize(Decimal("0.1")))
        r["number"] = printed(r["pan"])
    return out


def list_sales(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the sales a supervisor may reverse, newest first, of the caller's vendor
    only when it is bound to one: search by meter number as printed (any run of its digits)
    or receipt number, or a piece of the vendor's name."""
    caller.require("reverse")
    req = PageRequest.parse(params, SALES)
    ids = select(t.seq).select_from(transactions).where(t.kind == "sale")
    scope = vendor_filter(caller.vendor_scope())
    if scope is not None:
        ids = ids.where(t.vendor_id == scope)
    if req.q:
        digits = digits_of(req.q)
        if digits is None:
            ids = ids.where(t.vendor_id.in_(select(v.id).where(_contains(req.q, v.name))))
        else:
            by_meter = select(meters.c.id).where(
                meters.c.pan.like(like_pattern(digits), escape="\\"))
            receipt = [t.seq == int(digits)] if len(digits) <= 10 else []
            ids = ids.where(or_(t.meter_id.in_(by_meter), *receipt))
    with svc.db.read() as conn:
        return fetch(conn, SALES, req, ids, filtered=bool(req.q), load=_sale_rows)


PAYMENTS = ListSpec(sorts={"received": [p.id], "amount": [p.amount, p.id]}, default="received")


def _payment_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(payments).where(p.id.in_(ids))).all()
    return [payment_usecases.view(r._mapping) | {"id": r.id} for r in
            sorted(rows, key=lambda r: ids.index(r.id))]


def list_payments(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the mobile-money payments in the caller's scope, of one state and provider
    when given (the exceptions to act on, oldest first, by default): search by the account
    as typed, the provider's transaction id, the phone or the payer's name."""
    caller.require("payments")
    req = PageRequest.parse(params, PAYMENTS)
    state = params.get("state", "exception")
    provider = params.get("provider", "")
    if state and state not in payment_usecases.STATES:
        raise InputError(N_("state must be one of {states}"), field="state",
                         states=", ".join(payment_usecases.STATES))
    if provider and provider not in payment_usecases.PROVIDERS:
        raise InputError(N_("provider must be one of {providers}"), field="provider",
                         providers=", ".join(payment_usecases.PROVIDERS))
    ids = select(p.id).select_from(payments)
    if state:
        ids = ids.where(p.state == state)
    if provider:
        ids = ids.where(p.provider == provider)
    scope = vendor_filter(caller.vendor_scope())
    if scope is not None:
        ids = ids.where(p.vendor_id == scope)
    if req.q:
        ids = ids.where(_contains(req.q, p.account, p.provider_id, p.phone, p.msisdn, p.payer))
    with svc.db.read() as conn:
        page = fetch(conn, PAYMENTS, req, ids, filtered=bool(req.q), load=_payment_rows)
    page.filters = {"state": state, "provider": provider}
    return page
