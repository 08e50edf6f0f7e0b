"""Tables of the web application (migration 0006_web): operator passwords, sign-in sessions,
float movements with references, and the simulator's demo meters.

They share the vending `metadata`, so Alembic and the tests see one schema.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

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

# every version of a tariff's prices and terms, with the UTC time it takes effect (0022):
# a sale prices on the version in force at its own time (`sts.vending.tariff_history`)
tariff_versions = Table(
    "tariff_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", TS, nullable=False),
    Column("description", String(200), nullable=False, default=""),
    Column("blocks", Text, nullable=False),
    Column("vat_rate", Money, nullable=False),
    Column("fixed_monthly", Money, nullable=False),
    Column("debt_share", Money, nullable=False),
    Column("free_units", Money, nullable=False),
    Column("min_amount", Money, nullable=False),
    Column("max_amount", Money, nullable=True),
    Column("actor", String(120), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("tariff_id", "version", name="uq_tariff_versions_version"),
    Index("ix_tariff_versions_effective", "tariff_id", "effective_from"),
)

# a float top-up above the utility's approval amount, waiting for a second operator (0022)
float_requests = Table(
    "float_requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("reference", String(80), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("state", String(10), nullable=False),  # pending / approved / rejected
    Column("decided_by", String(120), nullable=True),
    Column("decided_at", TS, nullable=True),
    Column("reason", String(300), nullable=False, default=""),
    Index("ix_float_requests_state", "state", "id"),
)

# the on-screen meters, one copy per signed-in operator (0022): trainees on the same meter
# never share a keypad, credit or clock (`sim_meters` above is no longer written)
sim_meter_states = Table(
    "sim_meter_states", metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("pan", String(18), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)
