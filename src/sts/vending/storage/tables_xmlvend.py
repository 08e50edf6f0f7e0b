"""Tables of the XMLVend face (NRS 009-6-10): the vending client systems registered to sell
(each bound to a vendor), their operators, and every exchange keyed by the client's msgID.
They live on the same `metadata` as the core tables; migration 0010_xmlvend creates them.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sts.vending.storage.tables import TS, metadata

# A vending client system (its clientID: an EAN, or the text a deployment uses), the vendor
# whose float pays for its sales, its output profile, and the certificate it must present.
vend_clients = Table(
    "vend_clients", metadata,
    Column("id", Integer, primary_key=True),
    Column("client_id", String(40), nullable=False, unique=True),
    Column("vendor_id", Integer, ForeignKey("vendors.id"), nullable=False),
    Column("profile", String(10), nullable=False),  # hexing / conlog
    Column("cert_sha256", String(64), nullable=True),  # hex SHA-256 of the DER certificate
    Column("label", String(120), nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
)

# An operator (authCred/opName) of a client.  Each is bound to its own API-key row (role and
# vendor), so its sales are attributed to it exactly as a /v1 key's are.
vend_client_operators = Table(
    "vend_client_operators", metadata,
    Column("id", Integer, primary_key=True),
    Column("client_row", Integer, ForeignKey("vend_clients.id"), nullable=False),
    Column("op_name", String(40), nullable=False),
    Column("secret_hash", String(200), nullable=False),  # Argon2id
    Column("role", String(12), nullable=False),
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("disabled_at", TS, nullable=True),
    UniqueConstraint("client_row", "op_name", name="uq_vend_client_operators_client_op"),
)

# One row per (client, msgID): the request's identity and kind, the service request id it
# used, its state (pending / done / failed / void / cancelled), and the complete response
# payload as sent, so a repeat or a last-response advice answers with the same bytes.
client_exchanges = Table(
    "client_exchanges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_row", Integer, ForeignKey("vend_clients.id"), nullable=False),
    Column("msg_date_time", String(40), nullable=False),
    Column("msg_unique", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("financial", Boolean, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("request", Text, nullable=False, default=""),  # the request as read (JSON)
    Column("status", String(10), nullable=False),
    Column("resp_type", String(60), nullable=True),  # e.g. "revenue:CreditVendResp"
    Column("payload", Text, nullable=True),  # the response's root element, as sent
    Column("fault", Boolean, nullable=False, default=False),
    Column("deliveries", Integer, nullable=False, default=0),  # answers sent after the first
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("client_row", "msg_date_time", "msg_unique",
                     name="uq_client_exchanges_msgid"),
    Index("ix_client_exchanges_request_id", "request_id"),
)
