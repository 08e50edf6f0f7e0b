"""Operator accounts for the web pages: argon2id passwords, sign-in with throttling and
lockout, and sessions.

A password is hashed with argon2id (memory-hard).  Five wrong passwords in a row lock the
account for 15 minutes (doubling with every further failure, at most a day); every address
may try at most 20 sign-ins a minute (kept in the database, so it holds across processes).
Sessions are random 256-bit tokens; only their SHA-256 is stored.  A session ends after 30
idle minutes, 12 hours after sign-in, or at sign-out.  Each operator sells through one API-key
row of its own (label `web:<username>`), so every sale names who made it.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from sts.errors import InputError, NotAuthenticated, RateLimited
from sts.vending import audit
from sts.vending.access.api_keys import hash_key, new_key
from sts.vending.access.passwords import PASSWORDS
from sts.vending.access.policy import Caller
from sts.vending.access.ratelimit import count as rate_count
from sts.vending.access.usernames import username_key
from sts.vending.i18n import N_
from sts.vending.storage.database import Database
from sts.vending.storage.tables import api_keys, operators, vendors
from sts.vending.storage.tables_office import operator_credentials, web_sessions

MIN_PASSWORD = 10
LOCK_AFTER = 5
LOCK_FIRST = timedelta(minutes=15)
LOCK_MAX = timedelta(days=1)
SIGNIN_LIMIT = 20  # sign-in attempts per address per minute (the default of --signin-limit)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)


@functools.cache
def _dummy() -> str:
    """Verified against when the username is unknown, so both cases cost the same time."""
    return PASSWORDS.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Operator:
    id: int
    username: str
    name: str
    role: str
    vendor_id: int | None
    vendor: str | None
    csrf: str = ""
    language: str | None = None  # the pages' language; None: the utility's


def hash_password(password: str) -> str:
    """The argon2id hash of an operator's password (what is stored)."""
    return PASSWORDS.hash(password)


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters",
                         field="password")
    if len(password) > 200:
        raise InputError("the password must have at most 200 characters", field="password")
    return password


def _lock_time(failed: int) -> timedelta:
    extra = max(0, failed - LOCK_AFTER)
    lock: timedelta = LOCK_FIRST * (2 ** min(extra, 16))
    return min(lock, LOCK_MAX)


FAILED = N_("wrong username or password (after 5 wrong passwords in a row an account is "
            "locked for 15 minutes or more; an administrator can unlock it)")


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(PASSWORDS.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def sign_in(db: Database, username: str, password: str, *, address: str,
            now: datetime, limit: int = SIGNIN_LIMIT) -> tuple[Operator, str]:
    """Check a password; (operator, session token), or NotAuthenticated / RateLimited.

    Every refusal is audited in a transaction that commits before the refusal is raised (an
    exception inside `db.begin()` would roll the audit entry back).  An unknown name, a wrong
    password and a locked account get the same answer, after the same argon2 verify (against a
    dummy hash for an unknown name), so the page does not tell which usernames exist; only the
    right password of a disabled account hears that it is disabled.
    """
    now = now.replace(microsecond=0)
    actor, subject = f"web:{address}"[:120], username[:120]
    with db.begin() as conn:
        count = rate_count(db, conn, f"login:{address}"[:80], now)
        if count == limit + 1:  # once per address and minute: the log stays bounded
            audit.append(db, conn, at=now, actor=actor, action="login.throttled",
                         subject=subject, details={"address": address, "limit": limit})
    if count > limit:
        raise RateLimited(N_("too many sign-in attempts from this address; wait a minute"),
                          field="username")
    o, c = operators.c, operator_credentials.c
    refusal: NotAuthenticated | None = None
    with db.begin() as conn:
        stmt = (select(o.id, o.username, o.name, o.role, o.vendor_id, o.active,
                       c.password_hash, c.failed_count, c.locked_until,
                       vendors.c.name.label("vendor"))
                .join(operator_credentials, c.operator_id == o.id)
                .outerjoin(vendors, vendors.c.id == o.vendor_id)
                .where(o.username_key == username_key(username)))
        if not db.is_sqlite:  # lock the credentials row only (not the outer-joined vendor)
            stmt = stmt.with_for_update(of=operator_credentials)
        row = conn.execute(stmt).first()
        ok = _verify(row.password_hash if row is not None else _dummy(), password)
        if row is None:
            audit.append(db, conn, at=now, actor=actor, action="login.failed",
                         subject=subject, details={"reason": "unknown user"})
            refusal = NotAuthenticated(FAILED, field="password")
        elif row.locked_until is not None and row.locked_until > now:
            audit.append(db, conn, at=now, actor=actor, action="login.locked",
                         subject=row.username, details={"until": row.locked_until.isoformat()})
            refusal = NotAuthenticated(FAILED, field="password")
        elif not ok or not row.active:
            failed = row.failed_count + (0 if ok else 1)
            locked = now + _lock_time(failed) if failed >= LOCK_AFTER else None
            conn.execute(update(operator_credentials).where(c.operator_id == row.id)
                         .values(failed_count=failed, locked_until=locked))
            audit.append(db, conn, at=now, actor=actor, action="login.failed",
                         subject=row.username, details={"failed": failed,
                                                        "locked": locked is not None})
            if locked is not None and not ok:
                audit.append(db, conn, at=now, actor=actor, action="login.lockout",
                             subject=row.username, details={"until": locked.isoformat(),
                                                            "failed": failed})
            refusal = NotAuthenticated(N_("this account is disabled") if ok else FAILED,
                                       field="username" if ok else "password")
        else:
            values: dict[str, object] = {"failed_count": 0, "locked_until": None,
                                         "last_login_at": now}
            if PASSWORDS.check_needs_rehash(row.password_hash):
                values["password_hash"] = PASSWORDS.hash(password)
            conn.execute(update(operator_credentials).where(c.operator_id == row.id)
                         .values(**values))
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            conn.execute(insert(web_sessions).values(
                token_hash=hash_key(token), operator_id=row.id, csrf=csrf, created_at=now,
                seen_at=now, expires_at=now + ABSOLUTE))
            audit.append(db, conn, at=now, actor=f"web:{row.username}", action="login",
                         subject=row.username, details={"address": address})
    if refusal is not None or row is None:  # raised after the audit entries are committed
        raise refusal or NotAuthenticated(FAILED, field="password")
    return Operator(row.id, row.username, row.name, row.role, row.vendor_id, row.vendor,
                    csrf), token


def end_sessions(conn: Connection, operator_id: int, *, now: datetime) -> int:
    """End an operator's sessions and revoke its web API-key row (how much was ended); what a
    password reset, a disable and a role change do, so old rights do not outlive them."""
    k = api_keys.c
    ended = conn.execute(delete(web_sessions).where(web_sessions.c.operator_id == operator_id))
    conn.execute(update(api_keys).where(k.operator_id == operator_id, k.label.like("web:%"),
                                        k.revoked_at.is_(None)).values(revoked_at=now))
    return int(ended.rowcount or 0)


def session(db: Database, token: str | None, *, now: datetime) -> Operator | None:
    """The operator signed in with this session token, or None (expired, unknown, disabled)."""
    if not token or len(token) > 100:
        return None
    s, o = web_sessions.c, operators.c
    digest = hash_key(token)
    with db.read() as conn:
        row = conn.execute(
            select(s.csrf, s.seen_at, s.expires_at, o.id, o.username, o.name, o.role,
                   o.vendor_id, o.active, o.language, vendors.c.name.label("vendor"))
            .join(operators, o.id == s.operator_id)
            .outerjoin(vendors, vendors.c.id == o.vendor_id)
            .where(s.token_hash == digest)).first()
    if row is None or not row.active or row.expires_at <= now or row.seen_at + IDLE <= now:
        return None
    if (now - row.seen_at).total_seconds() > 60:  # touch at most once a minute
        with db.begin() as conn:
            conn.execute(update(web_sessions).where(s.token_hash == digest)
                         .values(seen_at=now.replace(microsecond=0)))
    return Operator(row.id, row.username, row.name, row.role, row.vendor_id, row.vendor,
                    row.csrf, row.language)


def sign_out(db: Database, token: str | None, *, now: datetime) -> None:
    if not token:
        return
    with db.begin() as conn:
        row = conn.execute(select(operators.c.username)
                           .join(web_sessions, web_sessions.c.operator_id == operators.c.id)
                           .where(web_sessions.c.token_hash == hash_key(token))).first()
        conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == hash_key(token)))
        if row is not None:
            audit.append(db, conn, at=now.replace(microsecond=0), actor=f"web:{row.username}",
                         action="logout", subject=row.username, details={})


def caller(db: Database, op: Operator, *, now: datetime) -> Caller:
    """The service caller of a signed-in operator: its own API-key row, made on first use.

    The row's key is random and never shown, so it cannot be used over /v1; it exists so that
    transactions and rate limits name the operator.
    """
    label = f"web:{op.username}"
    k = api_keys.c
    with db.read() as conn:
        row = conn.execute(select(k.id, k.role, k.vendor_id).where(
            k.operator_id == op.id, k.label == label, k.revoked_at.is_(None))).first()
    if row is None or row.role != op.role or row.vendor_id != op.vendor_id:
        with db.begin() as conn:
            conn.execute(update(api_keys).where(k.operator_id == op.id, k.label == label,
                                                k.revoked_at.is_(None))
                         .values(revoked_at=now))
            key = new_key()
            kid = conn.execute(insert(api_keys).values(
                key_hash=hash_key(key), prefix="web-" + hashlib.sha256(key.encode())
                .hexdigest()[:8], role=op.role, label=label, operator_id=op.id,
                vendor_id=op.vendor_id, created_at=now.replace(microsecond=0))
                .returning(k.id)).scalar_one()
        return Caller(int(kid), op.role, label, op.vendor_id)
    return Caller(int(row.id), op.role, label, op.vendor_id)
