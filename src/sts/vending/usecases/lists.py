"""The back office's long lists (meters, customers; the simulator's meter picker) as pages:
what a search matches, which columns sort, and the rows of one page.  The paging itself is
`sts.vending.listing`'s.

A search is what people type: a meter number as printed, with or without spaces or dashes
(any run of its digits matches), or a piece of a customer's name, account number or address,
in any case.  On PostgreSQL trigram indexes answer the "contains" searches (migration 0019).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, or_, select, union
from sqlalchemy.sql.elements import ColumnElement

from sts.codec.digits import group
from sts.codec.pan import printed_number
from sts.vending.access.policy import Caller
from sts.vending.context import ServiceContext
from sts.vending.listing import (
    ListSpec,
    Loader,
    Page,
    PageRequest,
    digits_of,
    fetch,
    in_order,
    like_pattern,
)
from sts.vending.storage.tables import customers, meters, supply_groups, tariffs, vending_keys
from sts.vending.tariff import money

m, c = meters.c, customers.c

# Each sort key is served by an index on its columns (migration 0019): a page is read in
# index order, never by sorting a million rows.  The meter register sorts by its own columns;
# by customer name is the customer list's sort.
METERS = ListSpec(
    sorts={"number": [m.pan], "status": [m.status, m.pan], "registered": [m.created_at, m.id]},
    default="number", labels={"number": "Meter", "status": "Status", "registered": "Registered"})
CUSTOMERS = ListSpec(
    sorts={"account": [c.account_no], "name": [c.name, c.id]},
    default="account", labels={"account": "Account", "name": "Name"})


def printed(pan: str) -> str:
    """A meter number as printed on the meter, in groups of four ("0410 0000 012")."""
    return group(printed_number(pan))


def _customer_match(q: str, table: Any = customers) -> ColumnElement[bool]:
    p, t = like_pattern(q), table.c
    return or_(func.lower(t.name).like(p, escape="\\"),
               func.lower(t.address).like(p, escape="\\"),
               func.lower(t.account_no).like(p, escape="\\"))


def meter_ids(q: str) -> tuple[Any, bool]:
    """The ids of the meters a search matches (every meter for none); whether it filters.

    Words search by joining each meter to its customer, so for a common word ("Soweto") the
    database can walk the meters in number order and stop at a page of matches, and for a
    rare one start from the few customers that match.  Digits search the number (a trigram
    index) and, besides, the customers whose account or address holds them."""
    stmt = select(m.id).select_from(meters)
    if not q:
        return stmt, False
    digits = digits_of(q)
    if digits is None:
        return stmt.join(customers, c.id == m.customer_id).where(_customer_match(q)), True
    # aliases: the subqueries stand alone (never correlated with the outer meters/customers)
    cust, inner = customers.alias("match_c"), meters.alias("match_m")
    of_customers = select(cust.c.id).where(_customer_match(q, cust))
    by_number = select(inner.c.id).where(inner.c.pan.like(like_pattern(digits), escape="\\"))
    by_customer = select(inner.c.id).where(inner.c.customer_id.in_(of_customers))
    return stmt.where(m.id.in_(union(by_number, by_customer))), True


def _meter_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(m.id, m.pan, m.status, m.ti, m.service, m.created_at, supply_groups.c.sgc,
               vending_keys.c.krn, tariffs.c.name.label("tariff"), c.name.label("customer"),
               c.account_no, c.address,
               (supply_groups.c.current_key_id != m.key_id).label("key_change_due"))
        .join(supply_groups, supply_groups.c.id == m.sgc_id)
        .join(vending_keys, vending_keys.c.id == m.key_id)
        .join(tariffs, tariffs.c.id == m.tariff_id)
        .outerjoin(customers, c.id == m.customer_id)
        .where(m.id.in_(ids))).all()
    out = in_order(rows, ids)
    for r in out:
        r["number"] = printed(r["pan"])
        r["key_change_due"] = bool(r["key_change_due"])
    return out


def list_meters(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the meter register (back office, auditors)."""
    caller.require("registers")
    return _meter_page(svc, params, _meter_rows)


def _meter_page(svc: ServiceContext, params: Mapping[str, str], load: Loader) -> Page:
    """A page of the meters the register's search finds, its rows read by `load`."""
    req = PageRequest.parse(params, METERS)
    ids, filtered = meter_ids(req.q)
    with svc.db.read() as conn:
        return fetch(conn, METERS, req, ids, filtered=filtered, load=load)


def _picker_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(m.id, m.pan, c.name.label("customer"))
                        .outerjoin(customers, c.id == m.customer_id)
                        .where(m.id.in_(ids))).all()
    out = in_order(rows, ids)
    for r in out:
        r["drn"] = printed_number(r["pan"])
        r["number"] = group(r["drn"])
    return out


def pick_meters(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the meters a trainer picks for the simulator: by number as printed or the
    customer's name (the register's search), with the customer's name beside the number."""
    caller.require("simulator")
    return _meter_page(svc, params, _picker_rows)


def _customer_rows(conn: Connection, ids: list[Any]) -> list[dict[str, Any]]:
    count = (select(func.count()).where(meters.c.customer_id == c.id)
             .correlate(customers).scalar_subquery())
    rows = conn.execute(select(c.id, c.account_no, c.name, c.address, c.phone, c.debt_balance,
                               count.label("meters")).where(c.id.in_(ids))).all()
    out = in_order(rows, ids)
    for r in out:
        r["debt_balance"] = money(r["debt_balance"])
    return out


def list_customers(svc: ServiceContext, caller: Caller, params: Mapping[str, str]) -> Page:
    """One page of the customers (back office, auditors)."""
    caller.require("customer_record")
    req = PageRequest.parse(params, CUSTOMERS)
    ids = select(c.id).select_from(customers)
    if req.q:
        ids = ids.where(_customer_match(req.q))
    with svc.db.read() as conn:
        return fetch(conn, CUSTOMERS, req, ids, filtered=bool(req.q), load=_customer_rows)
