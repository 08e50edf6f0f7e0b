"""A trial sale: the full answer a sale would give, without tokens; nothing is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sts.vending import outbox as delivery_outbox
from sts.vending import receipts, tariff_history
from sts.vending.access.policy import Caller
from sts.vending.access.ratelimit import customer_read
from sts.vending.clock import local, utc
from sts.vending.issue import due_key_change
from sts.vending.meters import read_meter
from sts.vending.tariff import ZERO, units_str
from sts.vending.usecases.sale import (
    cashier_of,
    parse_sale,
    plan_sale,
    sale_quote,
    sale_receipt,
    utility_words,
)
from sts.vending.vendor import check_may_sell

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def trial(svc: ServiceContext, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    caller.require("purchase")
    pan, amount, _extra, _hash = parse_sale(body, caller)
    wanted = delivery_outbox.parse_deliver(body.get("deliver"))  # refused as the sale would
    with svc.db.begin() as conn:  # a trial shows the customer: limited as a lookup is
        customer_read(svc.db, conn, caller, svc.now(), svc.lookup_limit)
    hot = svc.hot
    with svc.db.read() as conn:
        cur = hot.cursor(conn)
        try:
            m = read_meter(hot, cur, pan, lock=False, vendor_id=caller.vendor_id)
            at = utc(svc.now())
            m = tariff_history.in_force(hot, cur, m, at)  # as the sale would price it
            delivery_outbox.channels_for(wanted, ami=m.ami)
            vendor = check_may_sell(caller, m)
            now = local(at, m.time_zone)
            q = sale_quote(m, amount, svc.month_totals(cur, m.id, now.strftime("%Y-%m")),
                           hot.money_out)
            kc = due_key_change(m, svc.key_loader(cur))
        finally:
            cur.close()
    toks: list[dict[str, Any]] = []
    if kc is not None:
        n = 4 if m.key.record.ea == 11 else 2
        toks += [{"token": None, "kind": "KCT", "class": 2, "subclass": s,
                  "description": "key change token"} for s in (3, 4, 8, 9)[:n]]
    for p in plan_sale(m, q):
        toks.append({"token": None, "kind": p.kind, "class": p.token_class,
                     "subclass": p.subclass, "units": units_str(p.units or ZERO),
                     "description": p.label.lower()})
    receipt = sale_receipt(m=m, q=q, vendor=vendor, receipt_no="", now=now, kc=kc,
                           tokens_out=toks, trial=True, cashier=cashier_of(caller))
    return {"trial": True, "receipt": receipt, "tokens": toks,
            "slip": receipts.slip(receipt, [], title="TRIAL - NOT A TAX INVOICE",
                                  _=utility_words(m))}
