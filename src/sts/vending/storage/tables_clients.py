"""Tables for the switch-facing interface (Electrum PSI v3): HTTP Basic credentials per vendor,
the store of client message ids, the journal of every request and advice, the advice state of
each sale, and fault reports.  They live on the same `metadata` as the core tables; migration
0003_electrum creates them.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from sts.vending.storage.tables import TS, metadata

# One HTTP Basic credential per row; the secret is stored as an Argon2id hash.  Each is bound
# to an API-key row (role, vendor) so roles, float rules and attribution match /v1 exactly.
basic_credentials = Table(
    "basic_credentials", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("username_key", String(64), nullable=True),  # NFKC + case-folded, unique
    Column("secret_hash", String(200), nullable=False),
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    # when set, originator.institution.id must equal it
    Column("institution_id", String(64), nullable=True),
    Column("label", String(120), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
    # hex SHA-256 of the DER client certificate this credential must present over mutual TLS
    # (migration 0017_client_certs); a request with that certificate and no Basic header is it
    Column("cert_sha256", String(64), nullable=True),
    Index("ux_basic_credentials_username_key", "username_key", unique=True),
    Index("ix_basic_credentials_cert_sha256", "cert_sha256"),
)

# Every client message id ever accepted (requests and advices): ids are unique across all
# operations; a purchase's row holds its outcome so a retry answers the same.
client_messages = Table(
    "client_messages", metadata,
    Column("id", String(64), primary_key=True),
    Column("operation", String(40), nullable=False),
    Column("ref_id", String(64), nullable=True),  # the original request of an advice
    Column("institution_id", String(64), nullable=False, default=""),
    Column("credential_id", Integer, nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("request", Text, nullable=False),  # the request as received (JSON)
    Column("status", String(10), nullable=False),  # pending / done / failed
    Column("http_status", Integer, nullable=True),
    Column("error_type", String(40), nullable=True),
    Column("outcome", Text, nullable=True),  # JSON: the final error, or what was done
    Column("repeats", Integer, nullable=False, default=0),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_client_messages_ref_id", "ref_id"),
)

# Append-only: one row per HTTP request on the interface, with its outcome.
message_journal = Table(
    "message_journal", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("operation", String(40), nullable=False),
    Column("message_id", String(64), nullable=False, default=""),
    Column("ref_id", String(64), nullable=True),
    Column("username", String(64), nullable=False, default=""),
    Column("institution_id", String(64), nullable=False, default=""),
    Column("http_status", Integer, nullable=False),
    Column("error_type", String(40), nullable=True),
    Column("detail", String(300), nullable=False, default=""),
    Index("ix_message_journal_message_id", "message_id"),
)

# The advice state of a sale: confirmed, or reversing/reversed (a reversal wins only before a
# confirmation; a confirmation is refused once a reversal has started).
sale_advices = Table(
    "sale_advices", metadata,
    Column("purchase_id", String(64), primary_key=True),
    Column("state", String(10), nullable=False),  # confirmed / reversing / reversed
    Column("confirmation_id", String(64), nullable=True),
    Column("reversal_id", String(64), nullable=True),
    Column("reason", String(300), nullable=False, default=""),
    Column("updated_at", TS, nullable=False),
)

fault_reports = Table(
    "fault_reports", metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("reference", String(20), nullable=False, unique=True),
    Column("meter_id", Integer, ForeignKey("meters.id"), nullable=False),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=True),
    Column("fault_type", String(40), nullable=False),
    Column("description", String(160), nullable=False, default=""),
    Column("contact_number", String(20), nullable=False),
    Column("customer", Text, nullable=False, default=""),  # JSON as reported
    Column("status", String(10), nullable=False, default="open"),
    Column("created_at", TS, nullable=False),
)
