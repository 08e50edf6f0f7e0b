"""Meter lookup: what a cashier confirms before a sale (customer, tariff, limits, arrears, any
key change due) and, given an amount, what it would buy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sts.vending import tariff_history
from sts.vending.access.policy import Caller
from sts.vending.access.ratelimit import customer_read
from sts.vending.clock import local, utc
from sts.vending.issue import due_key_change
from sts.vending.meters import read_meter
from sts.vending.tariff import free_units_due, money, parse_amount, units_str
from sts.vending.usecases.sale import month_total, sale_quote

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def lookup(svc: ServiceContext, meter: object, caller: Caller,
           amount: str | None = None) -> dict[str, Any]:
    caller.require("lookup")
    value = None if amount is None else parse_amount(amount)
    hot = svc.hot
    with svc.db.begin() as conn:
        customer_read(svc.db, conn, caller, svc.now(), svc.lookup_limit)
        cur = hot.cursor(conn)
        try:
            m = read_meter(hot, cur, meter, lock=False)
            at = utc(svc.now())
            m = tariff_history.in_force(hot, cur, m, at)  # the limits a sale now would use
            kc = due_key_change(m, svc.key_loader(cur))
            now = local(at, m.time_zone)
            month = svc.month_totals(cur, m.id, now.strftime("%Y-%m"))
        finally:
            cur.close()
    free_due = free_units_due(m.tariff, month_total(month, "month_free_units", hot.money_out))
    out: dict[str, Any] = {
        "meter": m.describe(),
        "customer": m.customer,
        "utility": m.utility,
        "tariff": {"name": m.tariff.name, "description": m.tariff.description},
        "min_amount": money(m.tariff.min_amount),
        "max_amount": money(m.tariff.max_amount) if m.tariff.max_amount else None,
        "arrears": money(m.debt_balance),
        "can_vend": m.status == "active",
        "key_change_due": kc is not None,
        "free_units_due": units_str(free_due),
    }
    if m.status != "active":
        out["blocked_reason"] = m.status_reason
    if kc is not None:
        out["new_key"] = kc.target() | {"rollover": kc.ro}
    if value is not None:
        out["quote"] = sale_quote(m, value, month, hot.money_out).as_dict()
    return out
