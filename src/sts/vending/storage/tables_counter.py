"""Tables of the counter (migration 0020_shifts): cashiers' shifts and the utility's counter
settings (the amount presets shown as buttons at the point of sale).

A shift names no sale: a sale belongs to the shift its cashier had open when it was made
(`sts.vending.usecases.shifts`), so the sale's hot path writes nothing more.  At most one
shift per operator is open (a partial unique index, on both backends).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, text

from sts.vending.storage.tables import TS, Money, metadata

shifts = Table(
    "shifts", metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=False),
    # the utility's wall time, as the sales' own created_at
    Column("opened_at", TS, nullable=False),
    Column("opening_cash", Money, nullable=False),  # the float in the drawer at the start
    Column("opened_by", String(10), nullable=False),  # cashier / sale (opened implicitly)
    Column("closed_at", TS, nullable=True),
    Column("counted_cash", Money, nullable=True),  # the cash in the drawer at the end
    Column("note", String(200), nullable=False, default=""),
    Index("ix_shifts_vendor_id", "vendor_id", "opened_at"),
    Index("ix_shifts_open_operator", "operator_id", unique=True,
          sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
)

counter_settings = Table(
    "counter_settings", metadata,
    Column("utility_id", Integer, ForeignKey("utilities.id"), primary_key=True),
    Column("amount_presets", String(200), nullable=False),  # "20 50 100 200"
    Column("updated_at", TS, nullable=False),
    Column("updated_by", String(120), nullable=False),
)
