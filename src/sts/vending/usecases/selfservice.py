"""Self-service: what a customer may do for themselves, with no sign-in (the `/buy` page and
USSD), acting as a mobile-money channel's vendor.

- `quote`: a meter as a stranger who typed its number may see it (the name masked) and what
  an amount buys;
- `start_prompt` / `follow_prompt`: pay from a phone (an M-Pesa Express prompt through
  `payments.prompt`) and follow it to its token.  The page holds a random ticket for its
  prompt; only the ticket's SHA-256 is stored, so only that browser sees the token.  Prompts
  to one phone are rate-limited (stored rows are the count), so the page cannot be used to
  flood a stranger's phone with payment prompts;
- `send_code` / `my_tokens`: a meter's recent tokens for whoever holds the phone on record,
  proved by a one-time code sent there by SMS: six digits, a few minutes, a few attempts,
  a few codes per meter per window; only a salted hash is stored;
- `report_fault`: a customer's fault report (USSD), through `sts.vending.faults`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from sts.codec.pan import parse_pan
from sts.errors import InputError, RateLimited, UnknownMeter, UnknownRecord
from sts.vending import faults
from sts.vending.access.policy import Caller
from sts.vending.clock import local
from sts.vending.i18n import N_
from sts.vending.meters import UNIT_NAMES, meter_pan, read_meter
from sts.vending.storage.tables import customers, meters, transactions
from sts.vending.storage.tables_payments import access_codes, payment_requests, payments
from sts.vending.tariff import money, parse_amount, units_str
from sts.vending.usecases import payments as pay
from sts.vending.usecases.sale import sale_quote

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
CODE_ATTEMPTS = 5  # wrong codes before a code is spent
CODES_PER_WINDOW = 3  # codes per meter per window
CODE_WINDOW = timedelta(minutes=15)
PROMPTS_PER_PHONE = 3  # payment prompts to one phone per window
PROMPT_WINDOW = timedelta(minutes=10)
RECENT_TOKENS = 5
FAULT_TYPES = ("no_power", "token_rejected", "meter_damaged", "other")


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def quote(svc: ServiceContext, meter: object, amount: object | None,
          caller: Caller) -> dict[str, Any]:
    """The meter (masked customer, allowed amounts) and, with `amount`, the units it buys
    now; an amount the sale would refuse is refused here with the same reason."""
    out = pay.describe_meter(svc, meter, caller)
    if amount is None:
        return out
    verdict = pay.validate(svc, out["meter"], amount, caller)
    if verdict.outcome != "ok":
        why = verdict.error  # the refusal's own words, so a page can translate them
        raise InputError(why.template if why else verdict.reason,
                         field="amount" if verdict.outcome == "amount" else "meter",
                         **(why.params if why else {}))
    value = parse_amount(amount)
    with svc.db.read() as conn:
        cur = svc.hot.cursor(conn)
        try:
            m = read_meter(svc.hot, cur, out["meter"], lock=False, vendor_id=caller.vendor_id)
            month = local(svc.now(), m.time_zone).strftime("%Y-%m")
            q = sale_quote(m, value, svc.month_totals(cur, m.id, month), svc.hot.money_out)
        finally:
            cur.close()
    return out | {"amount": money(value), "units": units_str(q.units + q.free_units),
                  "unit": UNIT_NAMES[m.service]}


def start_prompt(svc: ServiceContext, meter: object, amount: object, phone: object,
                 caller: Caller, ask: Callable[[pay.Prompt], pay.PromptAnswer],
                 provider: str = "mpesa") -> dict[str, Any]:
    """Prompt `phone` to pay; returns the prompt with the ticket the page follows it by."""
    caller.require("collect_payment")
    number = pay.international(phone) if isinstance(phone, str) else None
    if number is None:
        raise InputError(N_("enter your phone number with its country code, e.g. "
                            "254712345678"),
                         field="phone")
    since = svc.now() - PROMPT_WINDOW
    with svc.db.read() as conn:
        recent = conn.scalar(select(func.count()).select_from(payment_requests).where(
            payment_requests.c.phone == number, payment_requests.c.created_at >= since))
    if (recent or 0) >= PROMPTS_PER_PHONE:
        raise RateLimited(N_("too many payment requests to this phone; try again in a few "
                             "minutes"), field="phone")
    ticket = secrets.token_urlsafe(24)
    out = pay.prompt(svc, meter, amount, number, caller, ask, provider,
                     ticket_hash=ticket_hash(ticket))
    return out | {"ticket": ticket}


def follow_prompt(svc: ServiceContext, ticket: object, caller: Caller) -> dict[str, Any]:
    """Where the page's prompt is: pending, cancelled, or paid with its payment's state and,
    once sold, its tokens (key-change tokens first, as they must be entered)."""
    caller.require("collect_payment")
    if not isinstance(ticket, str) or not 16 <= len(ticket) <= 64:
        raise UnknownRecord("no such payment request", field="ticket")
    with svc.db.read() as conn:
        req = conn.execute(select(payment_requests).where(
            payment_requests.c.ticket_hash == ticket_hash(ticket))).mappings().first()
        if req is None:
            raise UnknownRecord("no such payment request", field="ticket")
        row = conn.execute(select(payments).where(
            payments.c.provider == req["provider"],
            payments.c.request_id == req["request_id"])).mappings().first()
        sale = None
        if row is not None and row["state"] == "sold" and row["purchase_id"]:
            sale = conn.execute(select(transactions.c.response).where(
                transactions.c.request_id == row["purchase_id"])).scalar()
    out: dict[str, Any] = {"state": req["state"], "meter": req["meter_pan"],
                           "amount": money(Decimal(req["amount"])), "phone": req["phone"],
                           "reason": req["result_desc"] if req["state"] == "cancelled" else ""}
    if row is not None:
        out["state"] = {"sold": "sold", "exception": "exception",
                        "refunded": "exception"}.get(row["state"], "paid")
        if row["state"] in ("exception", "refunded"):
            out["reason"] = row["reason"]
        out["receipt"] = row["provider_id"]
    if sale is not None:
        answer = json.loads(sale)
        out |= {"tokens": ordered(answer.get("tokens") or []),
                "units": (answer.get("receipt") or {}).get("units", ""),
                "unit": (answer.get("receipt") or {}).get("unit", "")}
    return out


def ordered(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens in the order a customer enters them: key-change tokens first."""
    def key_change(t: dict[str, Any]) -> bool:
        text = f"{t.get('kind', '')} {t.get('label', '')} {t.get('description', '')}".lower()
        return "key" in text and "change" in text

    return sorted(tokens, key=lambda t: 0 if key_change(t) else 1)


# --- "my tokens": a one-time code to the number on record ------------------------------------


def _phone_on_record(svc: ServiceContext, pan: str) -> str | None:
    with svc.db.read() as conn:
        found = conn.execute(select(meters.c.id, customers.c.phone).outerjoin(
            customers, meters.c.customer_id == customers.c.id).where(meters.c.pan == pan)
        ).first()
    if found is None:
        raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field="meter")
    return pay.international((found.phone or "").replace(" ", ""))


def mask_phone(phone: str) -> str:
    """A number as the page may show it: the country code and the last three digits."""
    return phone[:4] + "*" * max(0, len(phone) - 7) + phone[-3:]


def send_code(svc: ServiceContext, meter: object, caller: Caller,
              send: Callable[[str, str], None]) -> dict[str, Any]:
    """Make a one-time code for `meter` and `send(phone, text)` it to the number on record."""
    caller.require("collect_payment")
    pan = meter_pan(meter)
    phone = _phone_on_record(svc, pan)
    if phone is None:
        raise InputError(N_("this meter has no phone number on record; ask the utility to "
                            "add yours"), field="meter")
    now = svc.now()
    with svc.db.read() as conn:
        recent = conn.scalar(select(func.count()).select_from(access_codes).where(
            access_codes.c.meter_pan == pan, access_codes.c.created_at >= now - CODE_WINDOW))
    if (recent or 0) >= CODES_PER_WINDOW:
        raise RateLimited(N_("too many codes asked for this meter; try again in 15 minutes"),
                          field="meter")
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(16)
    with svc.db.begin() as conn:
        conn.execute(update(access_codes).where(access_codes.c.meter_pan == pan,
                                                access_codes.c.state == "open")
                     .values(state="replaced"))
        conn.execute(insert(access_codes).values(
            meter_pan=pan, phone=phone, salt=salt, code_hash=_hash(salt, code), attempts=0,
            state="open", created_at=now, expires_at=now + CODE_TTL))
    minutes = int(CODE_TTL.total_seconds() // 60)
    send(phone, f"Your code for meter {parse_pan(pan).drn} is {code}. It expires in {minutes} minutes. "
                "Never share it.")
    return {"meter": pan, "sent_to": mask_phone(phone), "expires_in": minutes}


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256((salt + code).encode()).hexdigest()


def my_tokens(svc: ServiceContext, meter: object, code: object,
              caller: Caller) -> dict[str, Any]:
    """The meter's recent tokens, for the right one-time code (used once)."""
    caller.require("collect_payment")
    pan = meter_pan(meter)
    if not isinstance(code, str) or not code.strip().isdigit() or len(code.strip()) > 12:
        raise InputError(N_("the code is the {digits} digits we sent by SMS"), field="code",
                         digits=CODE_DIGITS)
    code = code.strip()
    now = svc.now()
    with svc.db.read() as conn:
        row = conn.execute(select(access_codes).where(
            access_codes.c.meter_pan == pan, access_codes.c.state == "open")
            .order_by(access_codes.c.id.desc()).limit(1)).mappings().first()
    if row is None or row["expires_at"] < now:
        raise InputError(N_("that code has expired or was already used; ask for a new one"),
                         field="code")
    right = hmac.compare_digest(row["code_hash"], _hash(row["salt"], code))
    c = access_codes.c
    with svc.db.begin() as conn:  # the attempt counts whatever the answer (committed first)
        attempts = row["attempts"] + 1
        done = conn.execute(update(access_codes).where(
            c.id == row["id"], c.state == "open", c.attempts == row["attempts"]).values(
                attempts=attempts, state="used" if right else (
                    "spent" if attempts >= CODE_ATTEMPTS else "open"))).rowcount
    if done != 1:  # a twin request counted or used it first
        raise InputError(N_("that code was just tried from elsewhere; ask for a new one"),
                         field="code")
    if not right:
        left = CODE_ATTEMPTS - attempts
        if left:
            raise InputError(N_("that code is not right; {left} tries left"), field="code",
                             left=left)
        raise InputError(N_("that code is not right; ask for a new code"), field="code")
    return {"meter": pan, "sales": recent_sales(svc, pan)}


def recent_sales(svc: ServiceContext, pan: str) -> list[dict[str, Any]]:
    with svc.db.read() as conn:
        rows = conn.execute(select(transactions.c.response, transactions.c.created_at,
                                   transactions.c.status).join(
            meters, meters.c.id == transactions.c.meter_id).where(
            meters.c.pan == pan, transactions.c.kind == "sale")
            .order_by(transactions.c.seq.desc()).limit(RECENT_TOKENS)).all()
    out = []
    for r in rows:
        answer = json.loads(r.response)
        rec = answer.get("receipt") or {}
        out.append({"at": r.created_at.strftime("%Y-%m-%d %H:%M"), "status": r.status,
                    "amount": rec.get("amount", ""), "units": rec.get("units", ""),
                    "unit": rec.get("unit", ""), "receipt_no": rec.get("receipt_no", ""),
                    "tokens": ordered(answer.get("tokens") or [])})
    return out


# --- a fault report from a customer (USSD) -----------------------------------------------------


def fault_meter(svc: ServiceContext, meter: object, caller: Caller) -> dict[str, Any]:
    """The meter a fault is reported for, with its customer masked: any registered meter,
    a blocked one too (no power is a fault worth hearing of)."""
    caller.require("collect_payment")
    pan = meter_pan(meter)
    with svc.db.read() as conn:
        found = conn.execute(select(meters.c.id, customers.c.name).outerjoin(
            customers, meters.c.customer_id == customers.c.id).where(meters.c.pan == pan)
        ).first()
    if found is None:
        raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field="meter")
    return {"meter": pan, "customer": pay.mask_name(found.name or "")}


def report_fault(svc: ServiceContext, session_id: str, meter: object, fault_type: str,
                 phone: str, caller: Caller) -> dict[str, Any]:
    """Record a customer's fault report; the USSD session id makes a repeat the same report."""
    caller.require("collect_payment")
    if fault_type not in FAULT_TYPES:
        raise InputError(f"fault_type must be one of {', '.join(FAULT_TYPES)}",
                         field="fault_type")
    pan = meter_pan(meter)
    number = pay.international(phone) or ""
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:40]
    out, _ = faults.report(svc.db, svc.clock, request_id=f"ussd-{digest}", pan=pan,
                           fault_type=fault_type, description="reported by USSD",
                           contact_number=number, customer=None, caller=caller)
    return out
