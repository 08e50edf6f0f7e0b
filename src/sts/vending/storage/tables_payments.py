"""Mobile-money tables (migration 0011_payments).

`payments`: one row per provider transaction (an M-Pesa TransID / receipt number), written
before anything else happens so no money that moved is ever lost; unique on (provider,
provider_id), which makes a repeated callback a no-op.  `state` moves received -> sold |
exception, and an exception is settled by hand: sold (sold again) or refunded.

`payment_requests`: a payment prompt we asked the provider to make (M-Pesa Express / STK
push): what we asked for, so the callback's amount and phone are checked against it.
`ticket_hash` (0021) is the SHA-256 of the self-service page's random ticket for the prompt:
only the browser that made the prompt can follow it to its token.

`access_codes` (migration 0021_selfservice): the one-time codes of the self-service page's
"my tokens", sent by SMS to the number on record; only a salted hash is stored, with its
expiry and the attempts made, and the rows themselves are the rate limit.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from sts.vending.storage.tables import TS, Money, metadata

payments = Table(
    "payments", metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(16), nullable=False),  # mpesa / momo
    Column("provider_id", String(64), nullable=False),  # TransID, MpesaReceiptNumber
    Column("kind", String(12), nullable=False),  # c2b / stk
    Column("account", String(64), nullable=False, default=""),  # the reference as typed
    Column("meter_pan", String(18), nullable=True),  # the meter it names, when it names one
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False, default=""),
    Column("msisdn", String(80), nullable=False, default=""),  # as received (maybe masked)
    Column("phone", String(20), nullable=False, default=""),  # where the token SMS goes
    Column("payer", String(120), nullable=False, default=""),
    Column("paid_at", TS, nullable=True),  # the provider's time (its own zone, naive)
    Column("state", String(10), nullable=False),  # received / sold / exception / refunded
    Column("reason", String(300), nullable=False, default=""),
    Column("purchase_id", String(64), nullable=True),  # the sale
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=True),  # the channel
    Column("request_id", String(64), nullable=True),  # the prompt (STK CheckoutRequestID)
    Column("raw", Text, nullable=False, default=""),  # the callback as received (JSON)
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("provider", "provider_id", name="uq_payments_provider_id"),
    Index("ix_payments_state", "state", "id"),
)

payment_requests = Table(
    "payment_requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("request_id", String(64), nullable=False),  # CheckoutRequestID
    Column("merchant_request_id", String(64), nullable=False, default=""),
    Column("meter_pan", String(18), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False, default=""),
    Column("phone", String(20), nullable=False),
    Column("state", String(10), nullable=False),  # pending / paid / cancelled / failed
    Column("result_code", String(16), nullable=False, default=""),
    Column("result_desc", String(300), nullable=False, default=""),
    Column("provider_id", String(64), nullable=True),  # the receipt when paid
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("ticket_hash", String(64), nullable=True),  # the self-service page's ticket
    UniqueConstraint("provider", "request_id", name="uq_payment_requests_request"),
    Index("ix_payment_requests_phone", "phone", "id"),
    Index("ix_payment_requests_ticket", "ticket_hash"),
)

access_codes = Table(
    "access_codes", metadata,
    Column("id", Integer, primary_key=True),
    Column("meter_pan", String(18), nullable=False),
    Column("phone", String(20), nullable=False),  # where the code went (the number on record)
    Column("salt", String(32), nullable=False),
    Column("code_hash", String(64), nullable=False),  # sha256(salt + code)
    Column("attempts", Integer, nullable=False, default=0),
    Column("state", String(10), nullable=False),  # open / used / spent (too many attempts)
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("ix_access_codes_meter", "meter_pan", "created_at"),
)
