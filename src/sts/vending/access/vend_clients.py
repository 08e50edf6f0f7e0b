"""Vending client systems (XMLVend clients) and their operators.

A client is identified by its clientID (an EAN, not check-digit enforced: real deployments use
`0000000000026` and even `VUPSB`), sells for one vendor (the same float, supply-group
authorisations and access policy as every other face), answers in one output profile, and may
be tied to the SHA-256 of the client certificate it must present.  Its operators (authCred
opName and password) each get a password stored as an Argon2id hash and their own API-key row,
so an operator is an ordinary `Caller`: its role decides what it may do, and its sales are
attributed to it.  Every change is audited.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from sts.errors import AlreadyExists, InputError, NotAuthenticated, NotAuthorised, UnknownRecord
from sts.vending import audit
from sts.vending.access.api_keys import hash_key, new_key
from sts.vending.access.certs import check_fingerprint
from sts.vending.access.credentials import _Verified
from sts.vending.access.passwords import PASSWORDS
from sts.vending.access.policy import Caller
from sts.vending.clock import utc, wall_clock
from sts.vending.exchanges import autocommit
from sts.vending.storage.database import Database
from sts.vending.storage.tables import api_keys, meters, tariffs, transactions, vendors
from sts.vending.storage.tables_xmlvend import vend_client_operators, vend_clients

PROFILES = ("hexing", "conlog")
OPERATOR_ROLES = ("vendor", "supervisor", "engineer")
CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
OP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,39}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
_VERIFIED = _Verified()
_DUMMY = PASSWORDS.hash(secrets.token_urlsafe(16))


class ClientAuthError(NotAuthenticated):
    """The clientID is not registered or was revoked (XMLVend: ClientIDAuthorisationEx)."""

    code = "CLIENT_NOT_REGISTERED"


class ClientCertificateError(NotAuthenticated):
    """The certificate presented does not belong to the clientID (XMLVend: ClientIDSSLEx)."""

    code = "CLIENT_CERTIFICATE_MISMATCH"


@dataclass(frozen=True)
class ClientCaller:
    """An authenticated operator of a client: the caller every use case sees."""

    caller: Caller
    client_row: int
    client_id: str
    profile: str
    op_name: str
    operator_id: int
    vendor_name: str


@dataclass(frozen=True)
class Client:
    row: int
    client_id: str
    profile: str
    cert_sha256: str | None
    revoked: bool


def _now(now: datetime | None) -> datetime:
    return utc(now if now is not None else wall_clock())


def check_client_id(value: str) -> str:
    if not CLIENT_ID.fullmatch(value):
        raise InputError("a clientID is 1-40 letters, digits or ._- (an EAN such as "
                         "6004708000090)", field="client_id")
    return value


def check_profile(value: str) -> str:
    if value not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}", field="profile")
    return value


def _check_password(value: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise InputError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters",
                         field=field)
    return value


def add_client(db: Database, *, client_id: str, vendor: str, profile: str = "hexing",
               cert_sha256: str | None = None, label: str = "", actor: str = "cli",
               now: datetime | None = None) -> int:
    check_client_id(client_id)
    check_profile(profile)
    cert = check_fingerprint(cert_sha256)
    at = _now(now)
    with db.begin() as conn:
        vid = conn.scalar(select(vendors.c.id).where(vendors.c.name == vendor))
        if vid is None:
            raise UnknownRecord(f"vendor {vendor!r} does not exist", field="vendor")
        if conn.scalar(select(vend_clients.c.id)
                       .where(vend_clients.c.client_id == client_id)) is not None:
            raise AlreadyExists(f"client {client_id} is already registered", field="client_id")
        row = conn.execute(insert(vend_clients).values(
            client_id=client_id, vendor_id=vid, profile=profile, cert_sha256=cert,
            label=label[:120], created_at=at).returning(vend_clients.c.id)).scalar_one()
        audit.append(db, conn, at=at, actor=actor, action="vend_client.add", subject=client_id,
                     details={"vendor": vendor, "profile": profile, "cert_sha256": cert})
    return int(row)


def set_certificate(db: Database, client_id: str, cert_sha256: str | None, *,
                    actor: str = "cli", now: datetime | None = None) -> None:
    """Bind a client to the certificate it must present (None: no certificate required)."""
    cert = check_fingerprint(cert_sha256)
    at = _now(now)
    with db.begin() as conn:
        row = _client_row(conn, client_id)
        if cert is not None:
            other = conn.scalar(select(vend_clients.c.client_id).where(
                vend_clients.c.cert_sha256 == cert, vend_clients.c.id != row.id))
            if other is not None:
                raise AlreadyExists(f"that certificate is already bound to client {other}",
                                    field="cert_sha256")
        conn.execute(update(vend_clients).where(vend_clients.c.id == row.id)
                     .values(cert_sha256=cert))
        audit.append(db, conn, at=at, actor=actor, action="vend_client.certificate",
                     subject=client_id, details={"cert_sha256": cert})


def _client_row(conn: Connection, client_id: str, *, active: bool = True) -> Any:
    c = vend_clients.c
    stmt = select(vend_clients).where(c.client_id == client_id)
    if active:
        stmt = stmt.where(c.revoked_at.is_(None))
    row = conn.execute(stmt).first()
    if row is None:
        raise UnknownRecord(f"no {'active ' if active else ''}client {client_id}",
                            field="client_id")
    return row


def revoke_client(db: Database, client_id: str, *, actor: str = "cli",
                  now: datetime | None = None) -> None:
    """Revoke a client and every operator's key: its next request is refused."""
    at = _now(now)
    with db.begin() as conn:
        row = _client_row(conn, client_id)
        conn.execute(update(vend_clients).where(vend_clients.c.id == row.id)
                     .values(revoked_at=at))
        keys = select(vend_client_operators.c.api_key_id).where(
            vend_client_operators.c.client_row == row.id).scalar_subquery()
        conn.execute(update(api_keys).where(api_keys.c.id.in_(keys),
                                            api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=at))
        audit.append(db, conn, at=at, actor=actor, action="vend_client.revoke",
                     subject=client_id, details={})


def list_clients(db: Database) -> list[dict[str, Any]]:
    c, o = vend_clients.c, vend_client_operators.c
    with db.read() as conn:
        rows = conn.execute(select(c.id, c.client_id, c.profile, c.cert_sha256, c.label,
                                   c.created_at, c.revoked_at, vendors.c.name.label("vendor"))
                            .join(vendors, vendors.c.id == c.vendor_id).order_by(c.id)).all()
        ops = conn.execute(select(o.client_row, o.op_name, o.role, o.disabled_at)
                           .order_by(o.id)).all()
    out = []
    for r in rows:
        item = {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in r._mapping.items() if k != "id"}
        item["operators"] = [{"op_name": op.op_name, "role": op.role,
                              "disabled": op.disabled_at is not None}
                             for op in ops if op.client_row == r.id]
        out.append(item)
    return out


def add_operator(db: Database, *, client_id: str, op_name: str, role: str = "vendor",
                 password: str | None = None, actor: str = "cli",
                 now: datetime | None = None) -> str:
    """A new operator of a client; returns its password (generated unless given: shown once)."""
    if not OP_NAME.fullmatch(op_name):
        raise InputError("an operator name is 1-40 letters, digits or ._@-", field="op_name")
    if role not in OPERATOR_ROLES:
        raise InputError(f"role must be one of {', '.join(OPERATOR_ROLES)}", field="role")
    secret = _check_password(password) if password is not None else secrets.token_urlsafe(12)
    at = _now(now)
    with db.begin() as conn:
        client = _client_row(conn, client_id)
        o = vend_client_operators.c
        if conn.scalar(select(o.id).where(o.client_row == client.id,
                                          o.op_name == op_name)) is not None:
            raise AlreadyExists(f"client {client_id} already has operator {op_name}",
                                field="op_name")
        key_id = conn.execute(insert(api_keys).values(
            key_hash=hash_key(new_key()),  # never shown: the row carries role and vendor
            prefix=("xv:" + op_name)[:12], role=role,
            label=f"xmlvend {client_id}/{op_name}"[:120], operator_id=None,
            vendor_id=client.vendor_id, created_at=at).returning(api_keys.c.id)).scalar_one()
        conn.execute(insert(vend_client_operators).values(
            client_row=client.id, op_name=op_name, secret_hash=PASSWORDS.hash(secret), role=role,
            api_key_id=key_id, created_at=at))
        audit.append(db, conn, at=at, actor=actor, action="vend_client.operator_add",
                     subject=f"{client_id}/{op_name}", details={"role": role})
    return secret


def _operator(conn: Connection, client_id: str, op_name: str) -> Any:
    o = vend_client_operators.c
    client = _client_row(conn, client_id)
    row = conn.execute(select(vend_client_operators).where(
        o.client_row == client.id, o.op_name == op_name)).first()
    if row is None:
        raise UnknownRecord(f"client {client_id} has no operator {op_name}", field="op_name")
    return row


def set_password(db: Database, *, client_id: str, op_name: str, password: str | None = None,
                 actor: str = "cli", now: datetime | None = None) -> str:
    """A new password for an operator (generated unless given); returns it."""
    secret = _check_password(password) if password is not None else secrets.token_urlsafe(12)
    at = _now(now)
    with db.begin() as conn:
        row = _operator(conn, client_id, op_name)
        conn.execute(update(vend_client_operators).where(vend_client_operators.c.id == row.id)
                     .values(secret_hash=PASSWORDS.hash(secret)))
        audit.append(db, conn, at=at, actor=actor, action="vend_client.operator_password",
                     subject=f"{client_id}/{op_name}", details={})
    return secret


def disable_operator(db: Database, *, client_id: str, op_name: str, actor: str = "cli",
                     now: datetime | None = None) -> None:
    at = _now(now)
    with db.begin() as conn:
        row = _operator(conn, client_id, op_name)
        conn.execute(update(vend_client_operators).where(vend_client_operators.c.id == row.id)
                     .values(disabled_at=at))
        conn.execute(update(api_keys).where(api_keys.c.id == row.api_key_id,
                                            api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=at))
        audit.append(db, conn, at=at, actor=actor, action="vend_client.operator_disable",
                     subject=f"{client_id}/{op_name}", details={})


def find_client(db: Database, client_id: str) -> Client | None:
    """The client registered under `client_id` (also a revoked one), or None."""
    c = vend_clients.c
    with db.read() as conn:
        row = conn.execute(select(c.id, c.client_id, c.profile, c.cert_sha256, c.revoked_at)
                           .where(c.client_id == client_id)).first()
    if row is None:
        return None
    return Client(row.id, row.client_id, row.profile, row.cert_sha256,
                  row.revoked_at is not None)


def _auth_statement() -> Any:
    """One query for a request's client, its vendor and the named operator (built once)."""
    c, o, k = vend_clients.c, vend_client_operators.c, api_keys.c
    ops = (select(o.client_row, o.id, o.secret_hash, o.role, o.disabled_at, o.api_key_id)
           .where(o.op_name == bindparam("op_name")).subquery())
    return (select(c.id.label("client_row"), c.client_id, c.profile, c.cert_sha256,
                   c.revoked_at, vendors.c.name.label("vendor"), ops.c.id.label("op_id"),
                   ops.c.secret_hash, ops.c.role, ops.c.disabled_at, k.id.label("key_id"),
                   k.label, k.vendor_id, k.revoked_at.label("key_revoked_at"))
            .join(vendors, vendors.c.id == c.vendor_id)
            .outerjoin(ops, ops.c.client_row == c.id)
            .outerjoin(api_keys, api_keys.c.id == ops.c.api_key_id)
            .where(c.client_id == bindparam("client_id")))


_AUTH = _auth_statement()


def authenticate(db: Database, *, client_id: str, op_name: str | None, password: str | None,
                 cert_sha256: str | None, new_password: str | None = None,
                 now: datetime | None = None, conn: Connection | None = None) -> ClientCaller:
    """The operator `op_name` of client `client_id`, checked against its password and the
    client's certificate (one query).  A `new_password` that is given and differs from the
    password changes it (audited) once the old one is verified."""
    c = vend_clients.c
    with autocommit(db, conn, write=False) as cx:
        row = cx.execute(_AUTH, {"client_id": client_id, "op_name": op_name or ""}).first()
        if cert_sha256 is not None and (row is None or row.cert_sha256 != cert_sha256):
            other = cx.scalar(select(c.client_id).where(c.cert_sha256 == cert_sha256))
            if other is not None:
                raise ClientCertificateError(
                    f"the client certificate belongs to client {other}, not {client_id}",
                    field="clientID")
    if row is None or row.revoked_at is not None:
        raise ClientAuthError(f"client ID {client_id} is not registered or has been "
                              "blocked", field="clientID")
    if row.cert_sha256 is not None and row.cert_sha256 != cert_sha256:
        raise ClientCertificateError(f"client {client_id} must present its registered "
                                     "client certificate", field="clientID")
    if not op_name:
        raise NotAuthorised("authCred/opName is required", field="authCred")
    found = row.op_id is not None
    stored = row.secret_hash if found else _DUMMY
    ok = _VERIFIED.check(row.op_id if found else 0, stored, password or "")
    if not found or not ok or row.disabled_at is not None or row.key_revoked_at is not None:
        raise NotAuthorised(f"operator {op_name} of client {client_id}: unknown, disabled or "
                            "wrong password", field="authCred")
    if new_password and new_password != password:
        set_password(db, client_id=client_id, op_name=op_name,
                     password=_check_password(new_password, "newPassword"),
                     actor=f"xmlvend:{client_id}/{op_name}", now=now)
    return ClientCaller(Caller(row.key_id, row.role, row.label, row.vendor_id), row.client_row,
                        row.client_id, row.profile, op_name, row.op_id, row.vendor)


# --- reads a response needs beyond the use case's answer -------------------------------------


def vendor_float(db: Database, vendor_id: int | None) -> Decimal:
    """The vendor's float now (XMLVend `clientStatus/availCredit`)."""
    return sale_context(db, vendor_id, None, None)[0]


def days_since_sale(db: Database, pan: str, at: datetime, *,
                    before_receipt: str | None = None) -> int | None:
    """Whole days from the meter's previous sale (before receipt `before_receipt`, or the
    latest) to `at` (local wall time); None when the meter had no sale."""
    return sale_context(db, None, pan, at, before_receipt=before_receipt)[1]


_AVAIL = (select(vendors.c.float_balance).where(vendors.c.id == bindparam("vendor_id"))
          .scalar_subquery().label("avail"))
_FLOAT = select(_AVAIL)
_CONTEXT = select(_AVAIL, select(transactions.c.created_at)
                  .join(meters, meters.c.id == transactions.c.meter_id)
                  .where(meters.c.pan == bindparam("pan"), transactions.c.kind == "sale",
                         transactions.c.seq < bindparam("before"))
                  .order_by(transactions.c.seq.desc()).limit(1).scalar_subquery()
                  .label("last"))


def sale_context(db: Database, vendor_id: int | None, pan: str | None, at: datetime | None, *,
                 before_receipt: str | None = None,
                 conn: Connection | None = None) -> tuple[Decimal, int | None]:
    """(the vendor's float now, whole days since the meter's previous sale) in one query:
    what a vend's answer shows beyond the sale itself."""
    before = int(before_receipt) if before_receipt and before_receipt.isdigit() else 2**31 - 1
    with autocommit(db, conn, write=False) as cx:
        if pan is None:
            row = cx.execute(_FLOAT, {"vendor_id": vendor_id or 0}).one()
        else:
            row = cx.execute(_CONTEXT, {"vendor_id": vendor_id or 0, "pan": pan,
                                        "before": before}).one()
    avail = Decimal(row.avail) if row.avail is not None else Decimal(0)
    if pan is None or at is None or row.last is None:
        return avail, None
    last_at = row.last
    if isinstance(last_at, str):  # SQLite hands a scalar subquery's datetime back as text
        last_at = datetime.fromisoformat(last_at)
    return avail, max(0, int((at.replace(tzinfo=None) - last_at).days))


_LIMITS: dict[str, tuple[float, Decimal, Decimal | None]] = {}
LIMITS_TTL = 30.0  # seconds a tariff's limits are remembered by this process


def tariff_limits(db: Database, name: str) -> tuple[Decimal, Decimal | None]:
    """A tariff's (minimum, maximum) amount, remembered briefly (Hexing puts them into every
    meterDetail; a sale's answer names only the tariff)."""
    now = time.monotonic()
    hit = _LIMITS.get(name)
    if hit is not None and now - hit[0] < LIMITS_TTL:
        return hit[1], hit[2]
    with db.read() as conn:
        row = conn.execute(select(tariffs.c.min_amount, tariffs.c.max_amount)
                           .where(tariffs.c.name == name)).first()
    low = Decimal(row.min_amount) if row is not None else Decimal(0)
    high = Decimal(row.max_amount) if row is not None and row.max_amount is not None else None
    if len(_LIMITS) > 1000:
        _LIMITS.clear()
    _LIMITS[name] = (now, low, high)
    return low, high


def vend_limits(db: Database) -> tuple[Decimal, Decimal | None]:
    """The lowest minimum and the highest maximum amount over all tariffs (Hexing's login
    answer carries one pair per vendor)."""
    with db.read() as conn:
        row = conn.execute(select(func.min(tariffs.c.min_amount),
                                  func.max(tariffs.c.max_amount))).first()
    if row is None or row[0] is None:
        return Decimal(0), None
    return Decimal(row[0]), Decimal(row[1]) if row[1] is not None else None
