"""HTTP Basic credentials for switches and POS networks (the Electrum interface authenticates
every request with Basic auth).

A credential is a username and a random password, issued per vendor (institution), stored as
an Argon2id hash (a person may choose to type it, so it gets a slow hash), revocable.  Each one
is bound to its own API-key row, so a Basic caller is an ordinary `Caller`: the same roles, the
same vendor float and SGC rules, the same attribution in transactions as /v1.

A credential may be bound to a TLS client certificate (the SHA-256 of its DER form, as
XMLVend clients are): it must then come over mutual TLS with that certificate, and a request
presenting that certificate without a Basic header is authenticated as the credential.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, insert, select, update

from sts.errors import AlreadyExists, InputError, NotAuthenticated, UnknownRecord
from sts.vending import audit, text
from sts.vending.access.api_keys import hash_key, new_key
from sts.vending.access.passwords import PASSWORDS
from sts.vending.access.policy import Caller, check_role
from sts.vending.access.usernames import check_username, username_key
from sts.vending.clock import utc, wall_clock
from sts.vending.storage.database import Database
from sts.vending.storage.tables import api_keys, vendors
from sts.vending.storage.tables_clients import basic_credentials

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{2,63}")


@dataclass(frozen=True)
class BasicCaller:
    caller: Caller
    credential_id: int
    username: str
    institution_id: str | None


_REFUSED = "unknown user, wrong password or revoked credential"


class _Verified:
    """Remembers recent successful verifications (by a digest of the password, never the
    password), so a busy switch does not pay an Argon2 hash on every request.  Revocation is
    still checked in the database on every request."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.seen: dict[tuple[int, str, str], None] = {}
        self.lock = threading.Lock()

    def check(self, cred_id: int, stored: str, password: str) -> bool:
        key = (cred_id, stored, hashlib.sha256(password.encode()).hexdigest())
        with self.lock:
            if key in self.seen:
                return True
        try:
            PASSWORDS.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        with self.lock:
            if len(self.seen) >= self.size:
                self.seen.pop(next(iter(self.seen)))
            self.seen[key] = None
        return True


_VERIFIED = _Verified()


def issue(db: Database, *, vendor: str, username: str | None = None, role: str = "vendor",
          institution_id: str | None = None, label: str = "", actor: str = "cli",
          now: datetime | None = None) -> tuple[str, str]:
    """A new credential for a vendor: (username, password).  The password is shown only now."""
    check_role(role)
    if role not in ("vendor", "supervisor"):
        raise InputError("Basic credentials sell for a vendor: role vendor or supervisor",
                         field="role")
    now = utc(now if now is not None else wall_clock())  # stored and hashed as naive UTC
    username = username or f"{vendor.lower().replace(' ', '-')[:40]}-{secrets.token_hex(3)}"
    if not USERNAME.fullmatch(username):
        raise InputError("username must be 3-64 letters, digits or ._@- (starting with a letter "
                         "or digit)", field="username")
    username = check_username(username, min_len=3, max_len=64, punctuation="._@-")
    password = secrets.token_urlsafe(24)
    with db.begin() as conn:
        vid = conn.scalar(select(vendors.c.id).where(vendors.c.name == vendor))
        if vid is None:
            raise UnknownRecord(f"vendor {vendor!r} does not exist", field="vendor")
        taken = conn.scalar(select(basic_credentials.c.username)
                            .where(basic_credentials.c.username_key == username_key(username)))
        if taken is not None:
            raise AlreadyExists(f"username {username} is taken (by {taken}: names that differ "
                                "only in case are the same)", field="username")
        key_id = conn.execute(insert(api_keys).values(
            key_hash=hash_key(new_key()),  # never shown: the row only carries role and vendor
            prefix=("basic:" + username)[:12], role=role, label=label or f"basic {username}",
            operator_id=None, vendor_id=vid, created_at=now).returning(api_keys.c.id)).scalar_one()
        conn.execute(insert(basic_credentials).values(
            username=username, username_key=username_key(username),
            secret_hash=PASSWORDS.hash(password), api_key_id=key_id,
            institution_id=institution_id, label=label, created_at=now))
        audit.append(db, conn, at=now, actor=actor, action="basic_credential.add",
                     subject=username, details={"vendor": vendor, "role": role,
                                                "institution_id": institution_id})
    return username, password


def revoke(db: Database, username: str, *, actor: str = "cli",
           now: datetime | None = None) -> None:
    now = utc(now if now is not None else wall_clock())  # stored and hashed as naive UTC
    with db.begin() as conn:
        row = conn.execute(select(basic_credentials.c.id, basic_credentials.c.api_key_id)
                           .where(basic_credentials.c.username_key == username_key(username),
                                  basic_credentials.c.revoked_at.is_(None))).first()
        if row is None:
            raise UnknownRecord(f"no active credential {username}", field="username")
        conn.execute(update(basic_credentials).where(basic_credentials.c.id == row.id)
                     .values(revoked_at=now))
        conn.execute(update(api_keys).where(api_keys.c.id == row.api_key_id)
                     .values(revoked_at=now))
        audit.append(db, conn, at=now, actor=actor, action="basic_credential.revoke",
                     subject=username, details={})


def bind_certificate(db: Database, username: str, cert_sha256: str | None, *,
                     actor: str = "cli", now: datetime | None = None) -> None:
    """Bind an active credential to a client certificate's SHA-256 (None: unbind).  One
    certificate names one active credential."""
    from sts.vending.access.certs import check_fingerprint

    cert = check_fingerprint(cert_sha256)
    now = utc(now if now is not None else wall_clock())
    c = basic_credentials.c
    with db.begin() as conn:
        row = conn.execute(select(c.id).where(c.username_key == username_key(username),
                                              c.revoked_at.is_(None))).first()
        if row is None:
            raise UnknownRecord(f"no active credential {username}", field="username")
        if cert is not None:
            other = conn.scalar(select(c.username).where(c.cert_sha256 == cert, c.id != row.id,
                                                         c.revoked_at.is_(None)))
            if other is not None:
                raise AlreadyExists(f"that certificate is already bound to credential {other}",
                                    field="cert_sha256")
        conn.execute(update(basic_credentials).where(c.id == row.id).values(cert_sha256=cert))
        audit.append(db, conn, at=now, actor=actor, action="basic_credential.certificate",
                     subject=username, details={"cert_sha256": cert})


def _row_statement() -> Any:
    c, k = basic_credentials.c, api_keys.c
    return (select(c.id, c.username, c.secret_hash, c.institution_id, c.revoked_at,
                   c.cert_sha256, k.id.label("key_id"), k.role, k.label, k.vendor_id,
                   k.revoked_at.label("key_revoked_at"))
            .join(api_keys, api_keys.c.id == c.api_key_id))


def authenticate(conn: Connection, username: str, password: str,
                 cert_sha256: str | None = None) -> BasicCaller:
    """The credential `username`, checked against its password and, when it is bound to a
    certificate, against the TLS client certificate presented (`cert_sha256`)."""
    if text.bad_char(username) is not None:  # the last guard: no NUL reaches the query
        raise NotAuthenticated(_REFUSED, field="authorization")
    c = basic_credentials.c
    row = conn.execute(_row_statement().where(c.username_key == username_key(username))).first()
    # an unknown user still costs one hash, so timing does not reveal which usernames exist
    stored = row.secret_hash if row is not None else _DUMMY
    ok = _VERIFIED.check(row.id if row is not None else 0, stored, password)
    if row is None or not ok or row.revoked_at is not None or row.key_revoked_at is not None:
        raise NotAuthenticated(_REFUSED, field="authorization")
    if row.cert_sha256 is not None and row.cert_sha256 != cert_sha256:
        raise NotAuthenticated(f"credential {username} must come over mutual TLS with its "
                               "registered client certificate", field="authorization")
    return BasicCaller(Caller(row.key_id, row.role, row.label, row.vendor_id), row.id, username,
                       row.institution_id)


def authenticate_certificate(conn: Connection, cert_sha256: str) -> BasicCaller:
    """The active credential bound to the client certificate presented (mutual TLS, verified
    by the server against its client CA before this is asked)."""
    c = basic_credentials.c
    row = conn.execute(_row_statement().where(c.cert_sha256 == cert_sha256,
                                              c.revoked_at.is_(None))).first()
    if row is None or row.key_revoked_at is not None:
        raise NotAuthenticated("the client certificate is bound to no active credential; "
                               "send HTTP Basic credentials", field="authorization")
    return BasicCaller(Caller(row.key_id, row.role, row.label, row.vendor_id), row.id,
                       row.username, row.institution_id)


def list_credentials(conn: Connection) -> list[dict[str, object]]:
    c = basic_credentials.c
    rows = conn.execute(select(c.username, c.institution_id, c.label, c.created_at,
                               c.revoked_at, c.cert_sha256, vendors.c.name.label("vendor"), api_keys.c.role)
                        .join(api_keys, api_keys.c.id == c.api_key_id)
                        .outerjoin(vendors, vendors.c.id == api_keys.c.vendor_id)
                        .order_by(c.id))
    return [{k: (v.isoformat() if isinstance(v, datetime) else v)
             for k, v in r._mapping.items()} for r in rows]


_DUMMY = PASSWORDS.hash(secrets.token_urlsafe(16))
