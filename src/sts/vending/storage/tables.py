"""The vending database: SQLAlchemy 2 Core tables (the Alembic migrations create them).

Money is `Money`: exact on every backend (NUMERIC on PostgreSQL, integer micro-units on
SQLite, so SQL arithmetic such as `float - amount` stays exact there too).  Vending keys are
stored only as opaque blobs produced by a security module.

Per-meter facts that must hold across processes live in the meter row, which every
token-issuing transaction locks first: `last_tid` / `tid_epoch` (TID allocation) and
`last_hash` (the meter's chain of transactions).  UNIQUE(meter_id, tid_epoch, tid) on the
token table is the backstop.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

MICRO = Decimal(1_000_000)


class Money(TypeDecorator[Decimal]):
    """An exact decimal with 6 places: NUMERIC(24, 6), or BIGINT micro-units on SQLite."""

    impl = Numeric(24, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(24, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money is never a float")
        dec = Decimal(value)
        if dialect.name == "sqlite":
            return int((dec * MICRO).to_integral_value())
        return dec

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)) / MICRO
        return Decimal(value)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)
TS = DateTime(timezone=False)  # naive local wall time: TIDs carry no zone

utilities = Table(
    "utilities", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("address", String(300), nullable=False, default=""),
    Column("vat_reg_num", String(40), nullable=False, default=""),
    Column("currency", String(3), nullable=False, default="ZAR"),
    # IANA zone whose local minutes the TIDs of this utility's tokens count (0002)
    Column("time_zone", String(64), nullable=False, default="UTC", server_default="UTC"),
    # how its money is written and its pages' default language, e.g. en_ZA, fr_CI (0023);
    # None: the currency's usual locale (sts.vending.money_text)
    Column("locale", String(20), nullable=True),
    # float top-ups above this amount wait for a second approver (0022); NULL: none do
    Column("top_up_approval_above", Money, nullable=True),
)

supply_groups = Table(
    "supply_groups", metadata,
    Column("id", Integer, primary_key=True),
    Column("sgc", String(6), nullable=False, unique=True),
    Column("name", String(120), nullable=False, default=""),
    Column("utility_id", Integer, ForeignKey("utilities.id"), nullable=False),
    # the key new tokens should be made under; meters on another key get a key change
    Column("current_key_id", Integer, nullable=True),
)

vending_keys = Table(
    "vending_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("sgc_id", Integer, ForeignKey("supply_groups.id"), nullable=False),
    Column("krn", Integer, nullable=False),
    Column("key_type", String(4), nullable=False),  # VUDK / VDDK / VCDK
    Column("dkga", Integer, nullable=False),
    Column("ea", Integer, nullable=False),
    Column("base_date", Integer, nullable=False),
    Column("table_set", String(20), nullable=True),  # EA07 only: "sample" / "production"
    Column("ken", Integer, nullable=False, default=255),
    Column("issued_until", TS, nullable=True),  # no token after this (IUT)
    Column("kct_until", TS, nullable=True),  # key change tokens may go on until this
    Column("credit_limit", Money, nullable=True),  # CLM: money the key may vend
    Column("credit_used", Money, nullable=False, default=Decimal(0)),
    Column("module", String(20), nullable=False),  # which security module holds it
    Column("blob", LargeBinary, nullable=False),  # opaque to all but that module
    Column("origin", String(10), nullable=False),  # generated / imported
    Column("created_at", TS, nullable=False),
    UniqueConstraint("sgc_id", "krn", name="uq_vending_keys_sgc_krn"),
)

customers = Table(
    "customers", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_no", String(40), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("address", String(300), nullable=False, default=""),
    Column("phone", String(30), nullable=False, default=""),
    Column("debt_balance", Money, nullable=False, default=Decimal(0)),
)

tariffs = Table(
    "tariffs", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False, unique=True),
    Column("description", String(200), nullable=False, default=""),
    Column("ti", Integer, nullable=True),  # tariff index meters on this tariff should carry
    # JSON list of [up_to_units or null, price per unit excl. VAT], per calendar month
    Column("blocks", Text, nullable=False),
    Column("vat_rate", Money, nullable=False, default=Decimal(0)),
    Column("fixed_monthly", Money, nullable=False, default=Decimal(0)),  # incl. VAT
    Column("debt_share", Money, nullable=False, default=Decimal(0)),  # of each purchase
    Column("free_units", Money, nullable=False, default=Decimal(0)),  # per month
    Column("min_amount", Money, nullable=False, default=Decimal(0)),
    Column("max_amount", Money, nullable=True),
    # the earliest effective time (UTC) of a scheduled version (`tariff_versions`) that this
    # row does not hold yet; NULL when the row is the newest version in force (0022)
    Column("pending_from", TS, nullable=True),
)

meters = Table(
    "meters", metadata,
    Column("id", Integer, primary_key=True),
    Column("pan", String(18), nullable=False, unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=True),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("sgc_id", Integer, ForeignKey("supply_groups.id"), nullable=False),
    # the key the meter holds now (SGC, KRN, base date, DKGA, EA come from the vending key)
    Column("key_id", Integer, ForeignKey("vending_keys.id"), nullable=False),
    Column("ti", Integer, nullable=False),
    Column("kt", Integer, nullable=False),
    Column("ken", Integer, nullable=False),
    Column("mfr_code", String(4), nullable=False),
    Column("service", String(12), nullable=False),  # electricity / water / gas / time
    Column("status", String(10), nullable=False),  # active / blocked
    Column("status_reason", String(200), nullable=False, default=""),
    Column("last_tid", Integer, nullable=False, default=0),
    Column("tid_epoch", Integer, nullable=False, default=0),  # +1 on each TID memory reset
    Column("max_epoch", Integer, nullable=False, default=0),
    Column("last_hash", String(64), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    # AMI-connected: sales are pushed to the meter over MQTT (sts.delivery); migration 0005
    Column("ami", Boolean, nullable=False, default=False, server_default=false()),
)

meter_months = Table(
    "meter_months", metadata,
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("month", String(7), primary_key=True),  # YYYY-MM
    Column("units", Money, nullable=False, default=Decimal(0)),
    Column("fixed_paid", Money, nullable=False, default=Decimal(0)),
    Column("free_units", Money, nullable=False, default=Decimal(0)),
)

vendors = Table(
    "vendors", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("address", String(300), nullable=False, default=""),
    Column("float_balance", Money, nullable=False, default=Decimal(0)),
    Column("status", String(10), nullable=False, default="active"),
)

vendor_sgcs = Table(
    "vendor_sgcs", metadata,
    Column("vendor_id", Integer, ForeignKey("vendors.id"), primary_key=True),
    Column("sgc_id", Integer, ForeignKey("supply_groups.id"), primary_key=True),
)

operators = Table(
    "operators", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(60), nullable=False, unique=True),
    # the name NFKC-normalised and case-folded (sts.vending.access.usernames): what sign-in
    # looks up and what must be unique, so `Demo-Admin` cannot sit beside `demo-admin`
    Column("username_key", String(60), nullable=True),
    Column("name", String(120), nullable=False, default=""),
    Column("role", String(12), nullable=False),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    # the pages' language for this operator (en, fr); None: the utility's (0023)
    Column("language", String(8), nullable=True),
    Index("ux_operators_username_key", "username_key", unique=True),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the key
    Column("prefix", String(12), nullable=False),  # first characters, for people
    Column("role", String(12), nullable=False),
    Column("label", String(120), nullable=False, default=""),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=True),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
)

# One row per sale, reversal, engineering issue or key change.  `request_id` is the client's
# id (purchase UUID, engineering request id); `seq` gives the receipt number.
transactions = Table(
    "transactions", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("kind", String(12), nullable=False),  # sale / reversal / engineering / key_change
    Column("meter_id", Integer, ForeignKey("meters.id"), nullable=False),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=True),
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("amount", Money, nullable=False, default=Decimal(0)),
    Column("vat", Money, nullable=False, default=Decimal(0)),
    Column("charges", Money, nullable=False, default=Decimal(0)),
    Column("debt", Money, nullable=False, default=Decimal(0)),
    Column("units", Money, nullable=False, default=Decimal(0)),
    Column("month", String(7), nullable=False, default=""),
    Column("status", String(10), nullable=False),  # completed / reversed
    Column("reverses", Integer, nullable=True),  # seq of the reversed sale
    Column("reason", String(300), nullable=False, default=""),
    # how a sale was paid (`sts.vending.tenders`: cash / card), NULL when the seller did not
    # say (migration 0020); a reversal refunds in its sale's tender
    Column("tender", String(8), nullable=True),
    # the shift a counter sale was made in (migration 0024): the cash-up counts it there by
    # id; NULL for machines' sales and older ones (the cash-up's time rule)
    Column("shift_id", Integer, nullable=True),
    Column("prev_key", Text, nullable=False, default=""),  # meter key state before (JSON)
    Column("response", Text, nullable=False),  # the exact JSON answer, for repeats
    Column("created_at", TS, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_transactions_meter_seq", "meter_id", "seq"),
    # a cashier's sales in a shift (migration 0020): the operator's key, then time
    Index("ix_transactions_api_key_id", "api_key_id", "created_at"),
    # the reversal of a sale; only reversals carry `reverses`, so a sale adds nothing to it
    Index("ix_transactions_reverses", "reverses", sqlite_where=text("reverses IS NOT NULL"),
          postgresql_where=text("reverses IS NOT NULL")),
    Index("ix_transactions_shift_id", "shift_id", sqlite_where=text("shift_id IS NOT NULL"),
          postgresql_where=text("shift_id IS NOT NULL")),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("txn_seq", Integer, ForeignKey("transactions.seq"), nullable=False),
    # meter_id and key_id are the transaction's, written with it: no foreign key checks of
    # their own (migration 0007: a parent lookup and row lock per token, for nothing)
    Column("meter_id", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("token", String(20), nullable=False),
    Column("token_class", Integer, nullable=False),
    Column("subclass", Integer, nullable=False),
    Column("tid", Integer, nullable=True),  # KCTs and test tokens carry none
    Column("tid_epoch", Integer, nullable=False),
    Column("units", Money, nullable=True),
    Column("kind", String(12), nullable=False),  # STD / FBE / KCT / ENG / TEST
    Column("description", String(120), nullable=False),
    # the key that encrypted it, so it can be verified after the meter moves on
    Column("key_id", Integer, nullable=False),
    Column("kt", Integer, nullable=False),
    Column("ti", Integer, nullable=False),
    Column("ken", Integer, nullable=False),
    Column("status", String(10), nullable=False),  # issued / reversed
    Column("created_at", TS, nullable=False),
    UniqueConstraint("meter_id", "tid_epoch", "tid", name="uq_tokens_meter_epoch_tid"),
    Index("ix_tokens_meter_token", "meter_id", "token"),
)

audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", TS, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("action", String(60), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # the id of the request that wrote the entry (`sts.vending.observe`; migration 0018):
    # a correlation with the server's log, outside the hash (older entries have none)
    Column("request_id", String(64), nullable=True),
)

rate_counters = Table(
    "rate_counters", metadata,
    Column("bucket", String(80), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False, unique=True),
    Column("sgc_id", Integer, ForeignKey("supply_groups.id"), nullable=False),
    Column("from_key_id", Integer, ForeignKey("vending_keys.id"), nullable=True),
    Column("to_key_id", Integer, ForeignKey("vending_keys.id"), nullable=False),
    Column("ro", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
)

campaign_items = Table(
    "campaign_items", metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), primary_key=True),
    Column("meter_id", Integer, ForeignKey("meters.id"), primary_key=True),
    Column("status", String(10), nullable=False),  # pending / done / failed
    Column("txn_seq", Integer, ForeignKey("transactions.seq"), nullable=True),
    Column("error", String(300), nullable=False, default=""),
)
