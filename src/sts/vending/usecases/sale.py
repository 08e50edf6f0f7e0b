"""A sale (credit vend): money in, a credit token (and any key change and free units) out.

The sale is the hot path: one transaction that checks the API key, locks the meter row (read
with key, tariff, customer, utility and the caller's vendor in one query), reads once after
the lock (an earlier answer for the id, the month's totals, the receipt number), makes the
tokens and stores everything.  The answer is the exact JSON text stored, so a repeat returns
the same bytes.  A trial (`trial.py`) is this same calculation without tokens or writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sts.errors import InputError, KeyCreditLimit, PurchaseReversed
from sts.vending import advices, i18n, metrics, observe, receipts, tariff_history
from sts.vending import outbox as delivery_outbox
from sts.vending.access.api_keys import check_key_row, hash_key
from sts.vending.access.policy import Caller
from sts.vending.clock import local, utc, wall
from sts.vending.i18n import N_
from sts.vending.issue import KeyChange, Planned, due_key_change, issue
from sts.vending.ledger import (
    Entry,
    Stored,
    check_request_id,
    entry_writes,
    request_hash,
    stored,
)
from sts.vending.meters import SERVICES, UNIT_NAMES, MeterView, VendorView, meter_pan, read_meter
from sts.vending.storage.statements import CUSTOMER_DEBT, KEY_CREDIT, UPSERT_MONTH, VENDOR_FLOAT, Row
from sts.vending.tariff import ZERO, Quote, money, parse_amount, quote, rate_str, units_str
from sts.vending.tenders import tender_of
from sts.vending.vendor import check_float, check_may_sell, float_not_covered

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext

# echoed in the receipt and part of the request's identity: name -> longest text allowed
SALE_FIELDS = {"reference": 64, "pay_type": 20}


def month_total(month_row: Row | None, name: str, money_out: Any) -> Decimal:
    """One of the meter's month totals (`month_units`, `month_fixed_paid`,
    `month_free_units`) from its month row (or None: nothing yet this month)."""
    if month_row is None:
        return ZERO
    value = money_out(month_row[name])
    return value if value is not None else ZERO


def sale_quote(m: MeterView, amount: Decimal, month_row: Row | None, money_out: Any) -> Quote:
    """What `amount` buys this month, given the meter's month totals row (or None)."""
    def total(name: str) -> Decimal:
        return month_total(month_row, name, money_out)

    return quote(m.tariff, amount, month_units=total("month_units"),
                 fixed_paid=total("month_fixed_paid"), free_issued=total("month_free_units"),
                 debt_balance=m.debt_balance)


def plan_sale(m: MeterView, q: Quote) -> list[Planned]:
    """The tokens of a sale: credit (none in a free-units claim), then any free units."""
    sub = SERVICES.index(m.service)
    plan = []
    if q.units > 0:
        plan.append(Planned("STD", 0, sub, {"units": units_str(q.units)}, q.units,
                            "CREDIT TOKEN"))
    if q.free_units > 0:
        plan.append(Planned("FBE", 0, sub, {"units": units_str(q.free_units)}, q.free_units,
                            "FREE BASIC UNITS"))
    return plan


def sale_receipt(*, m: MeterView, q: Quote, vendor: VendorView | None, receipt_no: str,
                 now: datetime, kc: KeyChange | None, tokens_out: list[dict[str, Any]],
                 trial: bool = False, cashier: str = "") -> dict[str, Any]:
    """The structured receipt of a sale (or of its trial); `now` is aware local time;
    `cashier` names who sold (the operator, or the API key's label)."""
    charges = []
    if q.fixed_charge > 0:
        charges.append({"description": "Fixed monthly charge", "amount": money(q.fixed_charge)})
    debt = []
    if q.debt > 0:
        debt.append({"description": "Debt recovery", "amount": money(q.debt),
                     "balance": money(q.debt_after)})
    r: dict[str, Any] = {
        "receipt_no": receipt_no, "date": now.isoformat(), "trial": trial,
        "utility": m.utility,
        "vendor": {"name": vendor.name, "address": vendor.address} if vendor else None,
        "cashier": cashier, "meter": m.describe(), "customer": m.customer,
        "tariff": {"name": m.tariff.name, "description": m.tariff.description},
        "amount": money(q.amount), "units": units_str(q.units),
        "unit": UNIT_NAMES[m.service],
        "energy_amount": money(q.energy_amount), "energy_net": money(q.energy_net),
        "steps": [{"units": units_str(s.units), "price": str(s.price),
                   "amount": money(s.amount)} for s in q.steps],
        "vat": {"rate": rate_str(m.tariff.vat_rate), "amount": money(q.vat)},
        "charges": charges, "debt": debt, "free_units": units_str(q.free_units),
        "key_change": None,
        "tokens": tokens_out,
    }
    if kc is not None:
        old = m.key.record
        r["meter"] = m.describe() | {k: v for k, v in kc.target().items()}
        r["key_change"] = {
            "from": {"sgc": old.sgc, "krn": old.krn, "ti": m.ti, "base_date": old.base_date},
            "to": kc.target(), "rollover": kc.ro,
        }
    return r


def utility_words(m: MeterView) -> receipts.Gettext:
    """The gettext of the meter's utility's language: its slips are written in it."""
    return i18n.gettext_for(m.utility.get("locale"))


def cashier_of(caller: Caller) -> str:
    """Who sold, as the slip names them: a signed-in operator's username (its key's label is
    `web:<username>`), else the API key's label."""
    return caller.label.removeprefix("web:")


def parse_sale(body: dict[str, Any], caller: Caller) -> tuple[str, Decimal, dict[str, str], str]:
    """The meter's PAN, the amount, the echoed extras and the request's identity hash."""
    if body.get("meter") is None:
        raise InputError("meter is required: the meter number printed on the meter or its "
                         "18-digit PAN", field="meter")
    pan = meter_pan(body.get("meter"))
    amount = parse_amount(body.get("amount"))
    extra: dict[str, str] = {}
    for name, longest in SALE_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > longest:
            raise InputError(f"{name} must be text of at most {longest} characters",
                             field=name)
        extra[name] = value
    rhash = request_hash({"meter": pan, "amount": str(amount), **extra,
                          "vendor": caller.vendor_id})
    return pan, amount, extra, rhash


def authenticate(svc: ServiceContext, cur: Any, key: str) -> Caller:
    """The API key, checked on the sale's own cursor (`access.api_keys.check_key_row`)."""
    digest = hash_key(key)
    return check_key_row(svc.hot.auth.one(cur, {"digest": digest}), digest)


def purchase(svc: ServiceContext, purchase_id: str, body: dict[str, Any], caller: Caller | None,
             api_key: str | None) -> tuple[str, bool]:
    """(stored JSON text, created): a new sale, or the stored answer for a repeated id."""
    parsed: dict[str, Any] = {}

    def identify(who: Caller) -> tuple[str, str]:
        meter, parsed["amount"], parsed["extra"], rhash = parse_sale(body, who)
        # token delivery channels: checked before anything is read; not part of the request's
        # identity (a repeat answers as stored, whatever it asks)
        parsed["wanted"] = delivery_outbox.parse_deliver(body.get("deliver"))
        return meter, rhash

    def sell(cur: Any, m: MeterView, after: Row, who: Caller, rhash: str,
             now: datetime) -> str:
        amount: Decimal = parsed["amount"]
        vendor = check_may_sell(who, m)
        # the request against the meter's own limits first (AMOUNT_TOO_LOW/HIGH), then the
        # vendor's float: a too-large amount is the request's fault whatever the float holds
        q = sale_quote(m, amount, after, svc.hot.money_out)
        check_float(vendor, amount)
        return issue_sale(svc, cur, purchase_id, m, q, seq=int(after["next_seq"]),
                          rhash=rhash, caller=who, vendor=vendor, now=now,
                          extra=parsed["extra"], title="CREDIT VEND - TAX INVOICE",
                          wanted=parsed["wanted"])

    return locked_sale(svc, purchase_id, caller, api_key, identify, sell)


# (caller) -> (meter as named, request hash): parses the request once the caller is known
Identify = Callable[[Caller], tuple[str, str]]
# (cursor, locked meter, after-lock row, caller, request hash, local now) -> stored JSON text
Sell = Callable[[Any, MeterView, Row, Caller, str, datetime], str]


def locked_sale(svc: ServiceContext, purchase_id: str, caller: Caller | None,
                api_key: str | None, identify: Identify, sell: Sell) -> tuple[str, bool]:
    """The exactly-once frame of every sale (a credit vend, a free-units claim): in one
    transaction, authenticate, lock the meter, answer a repeated id with its stored answer,
    else `sell`; a concurrent twin that committed first is answered as a repeat.  A sale for a
    known caller (the switch and terminal faces, whose advices can arrive before their
    purchase) is refused when a reversal advice already named its id.  Counted
    (`metrics.sale_made`) once committed.  A transaction PostgreSQL gave up to another
    (deadlock, e.g. beside a migration) is redone whole (`Database.retrying`)."""
    observe.note_purchase(purchase_id)
    text, created = svc.db.retrying(
        lambda: _locked_sale(svc, purchase_id, caller, api_key, identify, sell))
    metrics.sale_made(created)
    return text, created


def _locked_sale(svc: ServiceContext, purchase_id: str, caller: Caller | None,
                 api_key: str | None, identify: Identify, sell: Sell) -> tuple[str, bool]:
    hot = svc.hot
    rhash = ""
    try:
        with svc.db.begin() as conn:
            cur = hot.cursor(conn)
            try:
                if caller is None:
                    caller = authenticate(svc, cur, api_key or "")
                caller.require("purchase")
                check_request_id(purchase_id, "purchase_id")
                meter, rhash = identify(caller)
                # lock the meter first, then look for the id: a twin that held the lock
                # before us has committed by now, so its answer is visible
                m = read_meter(hot, cur, meter, lock=True, vendor_id=caller.vendor_id)
                at = utc(svc.now())
                # the tariff version in force at the sale's own time (tariff_history)
                m = tariff_history.in_force(hot, cur, m, at)
                now = local(at, m.time_zone)
                month = now.strftime("%Y-%m")
                after = hot.after_lock.one(cur, {"request_id": purchase_id, "meter_id": m.id,
                                                 "month": month})
                assert after is not None
                earlier = Stored.from_row(after)
                if earlier is not None:
                    return earlier.repeat("sale", rhash, purchase_id), False
                if api_key is None and advices.state_in(conn, purchase_id) == "reversed":
                    raise PurchaseReversed(f"purchase {purchase_id} was reversed by an advice "
                                           "before it arrived: nothing is sold",
                                           field="purchase_id")
                return sell(cur, m, after, caller, rhash, now), True
            finally:
                cur.close()
    except svc.integrity_errors:
        # a concurrent twin with the same id committed first: answer as a repeat
        with svc.db.read() as conn:
            cur = hot.cursor(conn)
            try:
                again = stored(hot, cur, purchase_id)
            finally:
                cur.close()
        if again is None:
            raise
        return again.repeat("sale", rhash, purchase_id), False


def issue_sale(svc: ServiceContext, cur: Any, purchase_id: str, m: MeterView, q: Quote, *,
               seq: int, rhash: str, caller: Caller, vendor: VendorView, now: datetime,
               title: str, extra: dict[str, Any] | None = None,
               wanted: list[delivery_outbox.ChannelRequest] | None = None) -> str:
    """Make the tokens of quote `q` (after any key change due) and write the sale: the
    transaction, its tokens, the meter's month totals, the customer's debt, the delivery jobs
    (`wanted` channels, plus AMI for an AMI meter) and the vendor's float (taken last,
    conditionally).  The one writer of sales; returns the stored JSON."""
    hot = svc.hot
    mi = hot.money_in
    amount = q.amount
    kc = due_key_change(m, svc.key_loader(cur))
    res = issue(svc.sm, m, plan_sale(m, q), kc, wall(now))
    credit_key = kc.new_key if kc is not None else m.key
    if credit_key.credit_limit is not None and hot.execute(
            cur, KEY_CREDIT, {"id": credit_key.record.id, "amount": mi(q.energy_amount)}) != 1:
        raise KeyCreditLimit(N_("the vending key's credit limit is reached"), field="meter")
    toks = res.public()
    receipt = sale_receipt(m=m, q=q, vendor=vendor, receipt_no=f"{seq:010d}", now=now, kc=kc,
                           tokens_out=toks, cashier=cashier_of(caller))
    if extra:
        receipt["request"] = extra
    response = {"purchase_id": purchase_id, "receipt": receipt, "tokens": toks,
                "slip": receipts.slip(receipt, toks, title=title, _=utility_words(m))}
    month = now.strftime("%Y-%m")
    body, writes = entry_writes(hot, Entry(
        seq=seq, request_id=purchase_id, kind="sale", meter=m, request_hash=rhash,
        response=response, now=wall(now), issued=res, vendor_id=caller.vendor_id,
        api_key_id=caller.key_id if caller.key_id > 0 else None, month=month, amount=amount,
        vat=q.vat, charges=q.fixed_charge, debt=q.debt, units=q.units,
        tender=tender_of((extra or {}).get("pay_type"))))
    writes.append((UPSERT_MONTH, {"meter_id": m.id, "month": month, "units": mi(q.units),
                                  "fixed_paid": mi(q.fixed_charge),
                                  "free_units": mi(q.free_units)}))
    if q.debt > 0 and m.customer_id is not None:
        writes.append((CUSTOMER_DEBT, {"id": m.customer_id, "debt": mi(q.debt)}))
    # token delivery: the jobs (transactional outbox) go with the sale's own writes
    writes += delivery_outbox.job_writes(purchase_id, txn_seq=seq, meter_id=m.id, ami=m.ami,
                                         wanted=wanted or [], now=hot.ts_in(utc(now)))
    # the vendor row is the hottest row: touch it last, so its lock is held briefly
    writes.append((VENDOR_FLOAT, {"id": vendor.id, "amount": mi(amount)}))
    if hot.write(cur, writes) != 1:
        raise float_not_covered()
    return body


def purchase_dict(svc: ServiceContext, purchase_id: str, body: dict[str, Any],
                  caller: Caller) -> tuple[dict[str, Any], bool]:
    text, created = purchase(svc, purchase_id, body, caller, None)
    out: dict[str, Any] = json.loads(text)
    return out, created
