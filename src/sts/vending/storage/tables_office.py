"""Tables of the web application (migration 0006_web): operator passwords, sign-in sessions,
float movements with references, and the simulator's demo meters.

They share the vending `metadata`, so Alembic and the tests see one schema.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from sts.vending.storage.tables import TS, Money, metadata

# one row per operator who may sign in to the web pages; the hash is argon2id
operator_credentials = Table(
    "operator_credentials", metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("failed_count", Integer, nullable=False, default=0),  # consecutive wrong passwords
    Column("locked_until", TS, nullable=True),
    Column("last_login_at", TS, nullable=True),
    Column("changed_at", TS, nullable=False),
)

# a signed-in browser: the cookie holds a random token, the table only its SHA-256
web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("seen_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("ix_web_sessions_operator_id", "operator_id"),
)

# every change of a vendor's float other than a sale or reversal: top-ups and adjustments
float_movements = Table(
    "float_movements", metadata,
    Column("id", Integer, primary_key=True),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # top_up / adjustment
    Column("amount", Money, nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("reference", String(80), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_float_movements_vendor_id", "vendor_id", "id"),
)

# the on-screen meters: the meter's state without its key (re-derived from the vending key)
sim_meters = Table(
    "sim_meters", metadata,
    Column("pan", String(18), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)
