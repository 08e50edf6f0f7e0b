"""Mobile money: every provider transaction becomes a payment row first, then one sale.

The rule that keeps customers' trust: *no payment without a token, no token without a
payment*.  A callback is written as a `payments` row (unique on provider + provider id) in
its own transaction before anything else, so a repeated callback finds the row and changes
nothing, and money that moved is never lost whatever happens next.  Then the one sale
(`usecases.sale`) runs as the channel's vendor under a purchase id derived from the provider
id (`mpesa-<TransID>`): exactly once even when twins race, because the sale itself is exactly
once per purchase id.  A payment that cannot be sold (a meter blocked after validation, an
amount out of range, any refusal) becomes an `exception` with its reason, for the back office
to sell again or refund:

    received -> sold | exception -> sold (sold again) | refunded

A payment still `received` (the server stopped between the row and the sale) is sold by the
next callback for it or by `retry_received`.  Provider adapters (HTTP, payload shapes) live in
the faces (`sts.payments`); here is only what every provider shares.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from sts.errors import (
    InputError,
    PaymentMismatch,
    PaymentState,
    StsError,
    Unavailable,
    UnknownRecord,
)
from sts.vending import audit, tariff_history
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.clock import local, utc
from sts.vending.ledger import REQUEST_ID
from sts.vending.meters import meter_pan, read_meter
from sts.vending.storage.tables import customers, meters, transactions, vendors
from sts.vending.storage.tables_payments import payment_requests, payments
from sts.vending.tariff import money, parse_amount
from sts.vending.usecases import deliveries, reprint, sale
from sts.vending.usecases.sale import sale_quote
from sts.vending.vendor import check_may_sell

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext

PROVIDERS = ("mpesa", "momo")
STATES = ("received", "sold", "exception", "refunded")
PAGE_MAX = 500
_INTERNATIONAL = re.compile(r"^\+?([1-9][0-9]{8,14})$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Payment:
    """One provider transaction as an adapter parsed it from a callback (fields checked)."""

    provider: str
    provider_id: str
    kind: str  # c2b / stk
    account: str  # the account reference as the customer typed it (a meter number)
    amount: Decimal
    currency: str = ""
    msisdn: str = ""  # the payer's number as received: maybe masked or hashed
    payer: str = ""
    paid_at: datetime | None = None
    raw: str = ""
    request_id: str | None = None  # the prompt this pays (STK CheckoutRequestID)


@dataclass(frozen=True)
class Verdict:
    """The answer to a provider's validation call: `ok`, or why not (`account`: no such meter;
    `amount`: outside the meter's limits; `other`: blocked, not sold by this channel)."""

    outcome: str
    reason: str = ""
    error: StsError | None = None  # the refusal itself (its words, for a page to translate)


@dataclass(frozen=True)
class Prompt:
    """A payment prompt to make (STK push): the meter, amount and phone, checked."""

    meter_pan: str
    amount: Decimal
    phone: str
    currency: str = ""


@dataclass(frozen=True)
class PromptAnswer:
    """The provider's acceptance of a prompt: its ids for the callback to come."""

    request_id: str
    merchant_request_id: str = ""


@dataclass(frozen=True)
class StatementLine:
    """One provider transaction as its statement lists it (for reconciliation)."""

    provider_id: str
    amount: Decimal
    account: str
    at: datetime | None
    status: str
    msisdn: str = ""
    payer: str = ""


def purchase_id_of(provider: str, provider_id: str) -> str:
    """The sale's purchase id for a provider transaction: `mpesa-<TransID>` when it fits the
    id grammar, else the provider's name and a hash (it never collides with a client's UUID)."""
    readable = f"{provider}-{provider_id}"
    if REQUEST_ID.match(readable):
        return readable
    return f"{provider}-{hashlib.sha256(provider_id.encode()).hexdigest()[:40]}"


def international(msisdn: str) -> str | None:
    """`+<digits>` for a number in international form (2547..., +2547...); None for a masked
    (`2547 ***** 126`) or hashed one, which cannot be sent to."""
    match = _INTERNATIONAL.match(msisdn.strip())
    return f"+{match.group(1)}" if match else None


def channel_caller(svc: ServiceContext, vendor: str, provider: str) -> Caller:
    """The caller a provider's callbacks act as: its channel vendor, whose float pays for
    the sales (`[payments] vendor`, e.g. "M-Pesa")."""
    with svc.db.read() as conn:
        vid = conn.scalar(select(vendors.c.id).where(vendors.c.name == vendor))
    if vid is None:
        raise UnknownRecord(f"the {provider} channel's vendor {vendor!r} does not exist; "
                            "add it with `sts admin vendor add`", field="vendor")
    return Caller(0, "vendor", f"channel:{provider}", int(vid))


# --- validation (before the customer's money moves) ----------------------------------------


def validate(svc: ServiceContext, account: object, amount: object, caller: Caller) -> Verdict:
    """Would a payment of `amount` to `account` be sold?  Nothing is stored."""
    caller.require("collect_payment")
    try:
        pan = meter_pan(account, "account")
    except InputError as exc:
        return Verdict("account", exc.message, exc)
    with svc.db.read() as conn:
        cur = svc.hot.cursor(conn)
        try:
            try:
                m = read_meter(svc.hot, cur, pan, lock=False, vendor_id=caller.vendor_id,
                               field="account")
            except StsError as exc:
                return Verdict("account", exc.message, exc)
            try:  # blocked, or not a meter this channel may sell to
                vendor = check_may_sell(caller, m)
            except StsError as exc:
                return Verdict("other", exc.message, exc)
            try:
                value = parse_amount(amount)
                at = utc(svc.now())
                m = tariff_history.in_force(svc.hot, cur, m, at)
                month = local(at, m.time_zone).strftime("%Y-%m")
                sale_quote(m, value, svc.month_totals(cur, m.id, month), svc.hot.money_out)
            except StsError as exc:
                return Verdict("amount", exc.message, exc)
            if vendor.float_balance < value:
                return Verdict("other", "the channel's float does not cover this payment")
        finally:
            cur.close()
    return Verdict("ok")


# --- a payment in ----------------------------------------------------------------------------


def receive(svc: ServiceContext, p: Payment, caller: Caller) -> tuple[dict[str, Any], bool]:
    """(the payment, created): record the provider transaction, then sell it once."""
    caller.require("collect_payment")
    _check(p)
    now = svc.now()
    created = _insert(svc, p, caller, now)
    row = _row(svc, p.provider, p.provider_id)
    if row["state"] != "received":
        return view(row), created
    return view(_sell(svc, row, caller)), created


def _check(p: Payment) -> None:
    if p.provider not in PROVIDERS:
        raise InputError(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    if not _PROVIDER_ID.match(p.provider_id):
        raise InputError("the provider's transaction id must be 1-64 letters, digits or ._:-",
                         field="provider_id")
    if p.amount <= 0:
        raise InputError("the amount must be greater than zero", field="amount")


def _insert(svc: ServiceContext, p: Payment, caller: Caller, now: datetime) -> bool:
    """Write the row (state received); False when the provider's id is already recorded."""
    pan: str | None
    try:
        pan = meter_pan(p.account, "account")
    except InputError:
        pan = None
    try:
        with svc.db.begin() as conn:
            conn.execute(insert(payments).values(
                provider=p.provider, provider_id=p.provider_id, kind=p.kind,
                account=p.account[:64], meter_pan=pan, amount=p.amount,
                currency=p.currency[:3], msisdn=p.msisdn[:80], phone="", payer=p.payer[:120],
                paid_at=p.paid_at, state="received", reason="", purchase_id=None,
                vendor_id=caller.vendor_id, request_id=p.request_id, raw=p.raw[:20000],
                created_at=now, updated_at=now))
    except svc.integrity_errors:
        return False  # a repeated callback
    return True


def _row(svc: ServiceContext, provider: str, provider_id: str) -> Any:
    with svc.db.read() as conn:
        row = conn.execute(select(payments).where(payments.c.provider == provider,
                                                  payments.c.provider_id == provider_id)
                           ).mappings().first()
    if row is None:
        raise UnknownRecord(f"no {provider} payment {provider_id}", field="provider_id")
    return row


def _customer_phone(conn: Connection, pan: str) -> str | None:
    phone = conn.scalar(select(customers.c.phone).join(
        meters, meters.c.customer_id == customers.c.id).where(meters.c.pan == pan))
    phone = (phone or "").replace(" ", "")
    return phone if _PHONE.match(phone) else None


def _sell(svc: ServiceContext, row: Any, caller: Caller) -> Any:
    """The one sale of a received (or an exception being sold again) payment; the row ends
    sold or exception, never dropped."""
    pid = purchase_id_of(row["provider"], row["provider_id"])
    state, reason, phone = "sold", "", ""
    try:
        pan = meter_pan(row["account"] if row["meter_pan"] is None else row["meter_pan"],
                        "account")
        with svc.db.read() as conn:
            phone = international(row["msisdn"]) or _customer_phone(conn, pan) or ""
        body: dict[str, Any] = {
            "meter": pan, "amount": str(Decimal(row["amount"]).quantize(Decimal("0.01"))),
            "reference": f"{row['provider']}:{row['provider_id']}"[:64],
            "pay_type": row["provider"]}
        if phone:
            body["deliver"] = [{"channel": "sms", "to": phone}]
        else:
            reason = "no phone number to send the token to (masked number, none on record)"
        sale.purchase(svc, pid, body, caller, None)
    except Unavailable:
        raise  # the row stays received: the next callback or a retry sells it
    except StsError as exc:
        state, reason = "exception", f"{exc.code}: {exc.message}"[:300]
    with svc.db.begin() as conn:
        values: dict[str, Any] = {"state": state, "reason": reason, "phone": phone,
                                  "updated_at": svc.now()}
        if state == "sold":
            values["purchase_id"] = pid
        conn.execute(update(payments).where(payments.c.id == row["id"],
                                            payments.c.state == row["state"]).values(**values))
        out = conn.execute(select(payments).where(payments.c.id == row["id"])).mappings().one()
    return out


def retry_received(svc: ServiceContext, caller: Caller, *, limit: int = 100) -> int:
    """Sell the channel's payments left `received` (the server stopped between the row and
    the sale); returns how many were settled."""
    caller.require("collect_payment")
    with svc.db.read() as conn:
        rows = conn.execute(select(payments).where(
            payments.c.state == "received", payments.c.vendor_id == caller.vendor_id)
            .order_by(payments.c.id).limit(limit)).mappings().all()
    for row in rows:
        _sell(svc, row, caller)
    return len(rows)


# --- self-service (USSD, the self-service page): the payer's own view ----------------------


def mask_name(name: str) -> str:
    """A customer's name as a stranger who typed the meter number may see it: each word's
    first letter ("John Mwangi" -> "J*** M***"), enough to confirm the right meter."""
    return " ".join(f"{word[0]}***" for word in name.split()[:4]) or "-"


def describe_meter(svc: ServiceContext, meter: object, caller: Caller) -> dict[str, Any]:
    """A meter as a paying customer may see it: number, masked name, the amounts allowed."""
    caller.require("collect_payment")
    pan = meter_pan(meter)
    with svc.db.read() as conn:
        cur = svc.hot.cursor(conn)
        try:
            m = read_meter(svc.hot, cur, pan, lock=False, vendor_id=caller.vendor_id)
        finally:
            cur.close()
    check_may_sell(caller, m)
    name = (m.customer or {}).get("name") or ""
    return {"meter": m.pan, "customer": mask_name(str(name)),
            "min_amount": money(m.tariff.min_amount),
            "max_amount": money(m.tariff.max_amount) if m.tariff.max_amount is not None
            else None, "currency": m.utility.get("currency") or ""}


def resend_last(svc: ServiceContext, phone: object, caller: Caller) -> dict[str, Any]:
    """Send the last token bought from (or for) this phone again by SMS, to this phone only:
    a caller who knows a number sees and resends nothing but that number's own purchase."""
    caller.require("collect_payment")
    number = international(phone) if isinstance(phone, str) else None
    if number is None:
        raise InputError("phone must be a number in international form", field="phone")
    with svc.db.read() as conn:
        row = conn.execute(select(payments).where(
            payments.c.phone == number, payments.c.state == "sold",
            payments.c.vendor_id == caller.vendor_id).order_by(payments.c.id.desc()).limit(1)
        ).mappings().first()
    if row is None:
        raise UnknownRecord("no purchase paid from this phone", field="phone")
    job = deliveries.resend(svc, caller, row["purchase_id"], "sms", number, None)
    return {"meter": row["meter_pan"], "amount": money(Decimal(row["amount"])),
            "purchase_id": row["purchase_id"], "delivery": job}


# --- prompts (STK push) ----------------------------------------------------------------------


def prompt(svc: ServiceContext, meter: object, amount: object, phone: object, caller: Caller,
           ask: Callable[[Prompt], PromptAnswer], provider: str = "mpesa",
           currency: str = "", *, ticket_hash: str | None = None) -> dict[str, Any]:
    """Ask the provider to prompt `phone` to pay `amount` for `meter` (validated first, as a
    paybill validation would be); the request is stored to check its callback against."""
    caller.require("collect_payment")
    if not isinstance(phone, str) or international(phone) is None:
        raise InputError("phone must be a number in international form, e.g. 254712345678",
                         field="phone")
    verdict = validate(svc, meter, amount, caller)
    if verdict.outcome != "ok":
        field = {"account": "meter", "amount": "amount"}.get(verdict.outcome, "meter")
        raise InputError(verdict.reason, field=field)
    p = Prompt(meter_pan(meter), parse_amount(amount), international(phone) or "", currency)
    answer = ask(p)
    now = svc.now()
    with svc.db.begin() as conn:
        conn.execute(insert(payment_requests).values(
            provider=provider, request_id=answer.request_id,
            merchant_request_id=answer.merchant_request_id, meter_pan=p.meter_pan,
            amount=p.amount, currency=currency[:3], phone=p.phone, state="pending",
            result_code="", result_desc="", ticket_hash=ticket_hash,
            provider_id=None, created_at=now, updated_at=now))
    out = {"request_id": answer.request_id, "meter": p.meter_pan, "amount": money(p.amount),
           "phone": p.phone, "state": "pending"}
    early = _early_payment(svc, provider, answer.request_id)
    if early is not None:  # its callback came before we stored the prompt: sell it now
        out["state"] = prompt_result(svc, provider, answer.request_id, "0", "", early,
                                     caller)["state"]
    return out


def _early_payment(svc: ServiceContext, provider: str, request_id: str) -> Payment | None:
    """A payment whose callback arrived before its prompt was stored (a fast provider):
    recorded then without a meter, it is sold once the prompt names the meter."""
    with svc.db.read() as conn:
        row = conn.execute(select(payments).where(
            payments.c.provider == provider, payments.c.request_id == request_id,
            payments.c.meter_pan.is_(None), payments.c.purchase_id.is_(None))
        ).mappings().first()
    if row is None:
        return None
    return Payment(provider=provider, provider_id=row["provider_id"], kind=row["kind"],
                   account="", amount=Decimal(row["amount"]), currency=row["currency"],
                   msisdn=row["msisdn"], payer=row["payer"], paid_at=row["paid_at"],
                   raw=row["raw"], request_id=request_id)


def prompt_result(svc: ServiceContext, provider: str, request_id: str, result_code: str,
                  result_desc: str, paid: Payment | None,
                  caller: Caller) -> dict[str, Any]:
    """The provider's answer to a prompt: paid (a payment, sold once), or cancelled / timed
    out (nothing sold).  A repeated answer changes nothing."""
    caller.require("collect_payment")
    with svc.db.read() as conn:
        req = conn.execute(select(payment_requests).where(
            payment_requests.c.provider == provider,
            payment_requests.c.request_id == request_id)).mappings().first()
    if req is None:
        if paid is None:
            raise UnknownRecord(f"no payment request {request_id}", field="request_id")
        # money moved for a prompt not yet stored (its callback overtook our own write):
        # record it now, sell it when `prompt` stores the request and names the meter
        _insert(svc, paid, caller, svc.now())
        return {"request_id": request_id, "state": "early",
                "payment": view(_row(svc, paid.provider, paid.provider_id))}
    out: dict[str, Any] = {"request_id": request_id, "state": req["state"]}
    if paid is None:
        if req["state"] == "pending":
            # paid per a status query, which names no receipt: the callback or the
            # statement (`reconcile --sell`) brings the payment itself
            state = "paid" if result_code == "0" else "cancelled"
            _finish_request(svc, req["id"], state, result_code, result_desc, None)
            out["state"] = state
        return out
    # money moved: it is recorded whatever else is wrong, against the meter we asked for
    mismatch = ""
    if paid.amount != Decimal(req["amount"]):
        mismatch = (f"paid {money(paid.amount)} but the prompt asked for "
                    f"{money(Decimal(req['amount']))}")
    elif req["currency"] and paid.currency != req["currency"]:
        mismatch = f"paid in {paid.currency or 'no currency'}, asked for {req['currency']}"
    payment = Payment(provider=paid.provider, provider_id=paid.provider_id, kind=paid.kind,
                      account=req["meter_pan"], amount=paid.amount,
                      currency=paid.currency or req["currency"],
                      msisdn=paid.msisdn or req["phone"], payer=paid.payer,
                      paid_at=paid.paid_at, raw=paid.raw, request_id=request_id)
    _check(payment)
    _insert(svc, payment, caller, svc.now())
    row = _row(svc, payment.provider, payment.provider_id)
    if (row["meter_pan"] is None and row["purchase_id"] is None
            and row["request_id"] == request_id and row["state"] in ("received", "exception")):
        # recorded early, before its prompt was stored: now the prompt names the meter
        with svc.db.begin() as conn:
            conn.execute(update(payments).where(
                payments.c.id == row["id"], payments.c.state == row["state"],
                payments.c.meter_pan.is_(None)).values(
                    account=req["meter_pan"], meter_pan=req["meter_pan"], state="received",
                    reason="", updated_at=svc.now()))
        row = _row(svc, payment.provider, payment.provider_id)
    if row["state"] == "received" and mismatch:
        err = PaymentMismatch(mismatch, field="amount")
        with svc.db.begin() as conn:
            conn.execute(update(payments).where(payments.c.id == row["id"],
                                                payments.c.state == "received")
                         .values(state="exception", reason=f"{err.code}: {mismatch}"[:300],
                                 updated_at=svc.now()))
        row = _row(svc, payment.provider, payment.provider_id)
    elif row["state"] == "received":
        row = _sell(svc, row, caller)
    result = view(row)
    if req["state"] == "pending":
        _finish_request(svc, req["id"], "paid", result_code, result_desc, paid.provider_id)
    out["state"] = "paid"
    out["payment"] = result
    return out


def pending_prompts(svc: ServiceContext, caller: Caller, older_than: float,
                    provider: str = "mpesa") -> list[str]:
    """Prompts still unanswered `older_than` seconds after we made them: their callback may
    be lost, so the face asks the provider's status query."""
    caller.require("collect_payment")
    before = svc.now() - timedelta(seconds=older_than)
    with svc.db.read() as conn:
        return list(conn.scalars(select(payment_requests.c.request_id).where(
            payment_requests.c.provider == provider, payment_requests.c.state == "pending",
            payment_requests.c.created_at <= before).order_by(payment_requests.c.id)
            .limit(PAGE_MAX)))


def _finish_request(svc: ServiceContext, rid: int, state: str, code: str, desc: str,
                    provider_id: str | None) -> None:
    with svc.db.begin() as conn:
        conn.execute(update(payment_requests).where(payment_requests.c.id == rid,
                                                    payment_requests.c.state == "pending")
                     .values(state=state, result_code=code[:16], result_desc=desc[:300],
                             provider_id=provider_id, updated_at=svc.now()))


# --- the back office -------------------------------------------------------------------------


def view(row: Any) -> dict[str, Any]:
    """A payment as every face shows it (the raw callback stays in the database)."""
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {"provider": row["provider"], "provider_id": row["provider_id"],
            "kind": row["kind"], "account": row["account"], "meter": row["meter_pan"],
            "amount": money(Decimal(row["amount"])), "currency": row["currency"],
            "msisdn": row["msisdn"], "phone": row["phone"], "payer": row["payer"],
            "paid_at": iso(row["paid_at"]), "state": row["state"], "reason": row["reason"],
            "purchase_id": row["purchase_id"], "request_id": row["request_id"],
            "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


def get(svc: ServiceContext, provider: object, provider_id: object,
        caller: Caller) -> dict[str, Any]:
    """One payment with its sale (purchase id, receipt; tokens where the role reads sales)."""
    caller.require("payments")
    if provider not in PROVIDERS:
        raise InputError(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    if not isinstance(provider_id, str) or not _PROVIDER_ID.match(provider_id):
        raise InputError("provider_id must be 1-64 letters, digits or ._:-",
                         field="provider_id")
    with svc.db.read() as conn:
        row = conn.execute(select(payments).where(payments.c.provider == provider,
                                                  payments.c.provider_id == provider_id)
                           ).mappings().first()
    if row is None or not caller.sees(row["vendor_id"]):
        raise UnknownRecord(f"no {provider} payment {provider_id}", field="provider_id")
    out = view(row)
    out["sale"] = None
    if row["purchase_id"] is not None:
        sale_out: dict[str, Any] = {"purchase_id": row["purchase_id"]}
        if caller.may("read_sale"):  # the receipt and tokens: only where the role reads sales
            stored = reprint.get_purchase(svc, row["purchase_id"], caller)
            sale_out |= {"receipt_no": stored["receipt"]["receipt_no"], "state": stored["state"],
                         "receipt": stored["receipt"], "tokens": stored["tokens"],
                         "delivery": stored["delivery"]}
        out["sale"] = sale_out
    return out


def list_payments(svc: ServiceContext, caller: Caller, *, state: object = None,
                  provider: object = None, after_id: int = 0,
                  limit: int = 100) -> dict[str, Any]:
    """One page of payments in the caller's scope, oldest first (e.g. state=exception)."""
    caller.require("payments")
    q = select(payments).where(payments.c.id > after_id)
    if state is not None:
        if state not in STATES:
            raise InputError(f"state must be one of {', '.join(STATES)}", field="state")
        q = q.where(payments.c.state == state)
    if provider is not None:
        if provider not in PROVIDERS:
            raise InputError(f"provider must be one of {', '.join(PROVIDERS)}",
                             field="provider")
        q = q.where(payments.c.provider == provider)
    vid = vendor_filter(caller.vendor_scope())
    if vid is not None:
        q = q.where(payments.c.vendor_id == vid)
    limit = max(1, min(limit, PAGE_MAX))
    with svc.db.read() as conn:
        rows = conn.execute(q.order_by(payments.c.id).limit(limit)).mappings().all()
    items = [view(r) | {"id": r["id"]} for r in rows]
    return {"payments": items, "next_after_id": items[-1]["id"] if len(items) == limit else None}


def settle(svc: ServiceContext, provider: object, provider_id: object, action: object,
           reason: object, caller: Caller) -> dict[str, Any]:
    """Settle an exception by hand: `sell` (sell it again, e.g. once the meter is unblocked)
    or `refund` (the money went back to the payer; `reason` says how).  Audited."""
    caller.require("settle_payment")
    if action not in ("sell", "refund"):
        raise InputError("action must be sell or refund", field="action")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
        raise InputError("reason is required (at most 200 characters)", field="reason")
    current = get(svc, provider, provider_id, caller)  # scope: another vendor's is unknown
    row = _row(svc, str(provider), str(provider_id))
    if row["state"] != "exception":
        raise PaymentState(f"payment {provider_id} is {row['state']}; only an exception "
                           "can be settled", field="provider_id")
    if action == "sell":
        channel = Caller(0, "vendor", f"channel:{provider}", row["vendor_id"])
        out = _sell(svc, row, channel)
    else:
        with svc.db.begin() as conn:
            conn.execute(update(payments).where(payments.c.id == row["id"],
                                                payments.c.state == "exception")
                         .values(state="refunded", reason=f"refunded: {reason}"[:300],
                                 updated_at=svc.now()))
            out = conn.execute(select(payments).where(payments.c.id == row["id"])
                               ).mappings().one()
    with svc.db.begin() as conn:
        audit.append(svc.db, conn, at=svc.now(), actor=caller.actor, action=f"payment.{action}",
                     subject=f"{provider}:{provider_id}",
                     details={"reason": reason, "before": current["state"],
                              "after": out["state"]})
    return view(out)


def reconcile(svc: ServiceContext, provider: str, lines: list[StatementLine],
              caller: Caller) -> dict[str, Any]:
    """The provider's statement against our payments, both ways: every statement line is a
    payment that was sold (`matched`), else it is listed (`not_recorded`: money we never
    heard of; `not_sold`: recorded but an exception or still received; `amount_differs`);
    and every payment of ours in the statement's period that the statement lacks
    (`not_on_statement`)."""
    caller.require("payments")
    if provider not in PROVIDERS:
        raise InputError(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    ids = [line.provider_id for line in lines]
    ours: dict[str, Any] = {}
    with svc.db.read() as conn:
        for start in range(0, len(ids), 500):
            for row in conn.execute(select(payments).where(
                    payments.c.provider == provider,
                    payments.c.provider_id.in_(ids[start:start + 500]))).mappings():
                ours[row["provider_id"]] = row
        times = [line.at for line in lines if line.at is not None]
        extra: list[Any] = []
        if times:
            extra = list(conn.execute(select(payments).where(
                payments.c.provider == provider, payments.c.paid_at >= min(times),
                payments.c.paid_at <= max(times))).mappings())
    vid = vendor_filter(caller.vendor_scope())
    out: dict[str, Any] = {"lines": len(lines), "matched": 0, "not_recorded": [],
                           "not_sold": [], "amount_differs": [], "not_on_statement": []}
    for line in lines:
        found = ours.get(line.provider_id)
        if found is None:
            out["not_recorded"].append({"provider_id": line.provider_id,
                                        "amount": money(line.amount), "account": line.account,
                                        "at": line.at.isoformat() if line.at else None})
        elif vid is not None and found["vendor_id"] != vid:
            continue
        elif Decimal(found["amount"]) != line.amount:
            out["amount_differs"].append(view(found) | {"statement_amount": money(line.amount)})
        elif found["state"] not in ("sold", "refunded"):
            out["not_sold"].append(view(found))
        else:
            out["matched"] += 1
    listed = set(ids)
    out["not_on_statement"] = [view(r) for r in extra if r["provider_id"] not in listed
                               and (vid is None or r["vendor_id"] == vid)]
    return out


def record_statement(svc: ServiceContext, provider: str, lines: list[StatementLine],
                     caller: Caller) -> list[dict[str, Any]]:
    """Money the statement shows and we never heard of (a lost callback, our server down):
    each completed line becomes a payment through the same path as a callback (a row, then
    one sale or an exception), so a late callback for it later changes nothing."""
    caller.require("collect_payment")
    out = []
    for line in lines:
        if line.status.lower() != "completed":
            continue
        payment = Payment(provider=provider, provider_id=line.provider_id, kind="statement",
                          account=line.account, amount=line.amount, msisdn=line.msisdn,
                          payer=line.payer, paid_at=line.at,
                          raw=dumps({"statement": line.provider_id}))
        got, created = receive(svc, payment, caller)
        if created:
            out.append(got)
    return out


def channel_report(svc: ServiceContext, caller: Caller, provider: str, start: datetime,
                   end: datetime) -> dict[str, Any]:
    """Payments received in [start, end) (UTC) per state, and whether the sold ones tie to
    the channel vendor's sales: every sold payment has its completed sale of the same amount
    (`sales_total` equals `sold_total`); a sale reversed since, or missing, is listed."""
    caller.require("payments")
    if provider not in PROVIDERS:
        raise InputError(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    q = (select(payments.c.provider_id, payments.c.state, payments.c.amount,
                payments.c.purchase_id, transactions.c.amount.label("sale_amount"),
                transactions.c.status.label("sale_status"))
         .outerjoin(transactions, transactions.c.request_id == payments.c.purchase_id)
         .where(payments.c.provider == provider, payments.c.created_at >= start,
                payments.c.created_at < end))
    vid = vendor_filter(caller.vendor_scope())
    if vid is not None:
        q = q.where(payments.c.vendor_id == vid)
    counts = dict.fromkeys(STATES, 0)
    amounts = dict.fromkeys(STATES, Decimal(0))
    sales_total = Decimal(0)
    untied: list[dict[str, Any]] = []
    with svc.db.read() as conn:
        rows = conn.execute(q.order_by(payments.c.id)).mappings().all()
    for r in rows:
        counts[r["state"]] += 1
        amounts[r["state"]] += Decimal(r["amount"])
        if r["state"] != "sold":
            continue
        if r["sale_status"] == "completed" and Decimal(r["sale_amount"]) == Decimal(r["amount"]):
            sales_total += Decimal(r["sale_amount"])
        else:
            untied.append({"provider_id": r["provider_id"], "purchase_id": r["purchase_id"],
                           "amount": money(Decimal(r["amount"])),
                           "sale": r["sale_status"] or "missing"})
    sold_total = amounts["sold"]
    return {"provider": provider, "from": start.isoformat(), "to": end.isoformat(),
            "states": {k: {"count": counts[k], "amount": money(amounts[k])} for k in STATES},
            "sold_total": money(sold_total), "sales_total": money(sales_total),
            "ties": not untied and sales_total == sold_total, "untied": untied}


def dumps(value: Any) -> str:
    """A callback kept as received (compact JSON) for the payment's record."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
