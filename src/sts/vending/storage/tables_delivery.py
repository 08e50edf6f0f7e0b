"""Delivery tables (migration 0005): one job per purchase and channel, and its attempts.

A job's `status` moves pending -> sent -> delivered -> accepted | rejected, or to failed
after its retries; `next_at` is when the dispatcher may take it next and `lease_until` marks
a job a dispatcher holds (a dispatcher killed mid-send leaves a lease that simply expires).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from sts.vending.storage.tables import TS, metadata

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("txn_seq", Integer, ForeignKey("transactions.seq"), nullable=False),
    Column("request_id", String(64), nullable=False),  # the purchase / engineering id
    Column("meter_id", Integer, ForeignKey("meters.id"), nullable=False),
    Column("channel", String(8), nullable=False),  # sms / email / ami
    Column("recipient", String(254), nullable=False, default=""),
    Column("lang", String(8), nullable=False, default=""),
    Column("status", String(10), nullable=False),
    Column("meter_result", Text, nullable=True),  # JSON: the meter's answer
    Column("reason", String(500), nullable=False, default=""),  # last error / rejection
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", TS, nullable=False),
    Column("lease_until", TS, nullable=True),
    Column("resend_of", Integer, nullable=True),
    Column("actor", String(120), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("sent_at", TS, nullable=True),
    Column("delivered_at", TS, nullable=True),
    Column("done_at", TS, nullable=True),
)
Index("ix_deliveries_due", deliveries.c.status, deliveries.c.next_at)
Index("ix_deliveries_meter", deliveries.c.meter_id, deliveries.c.channel, deliveries.c.status)
Index("ix_deliveries_request", deliveries.c.request_id)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False),
    Column("at", TS, nullable=False),
    Column("outcome", String(10), nullable=False),  # sent / delivered / error / failed / meter
    Column("detail", String(500), nullable=False, default=""),
)
Index("ix_delivery_attempts_delivery", delivery_attempts.c.delivery_id)
