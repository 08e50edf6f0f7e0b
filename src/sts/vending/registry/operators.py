"""Operator accounts, as the back office and `sts admin operator` manage them: adding one,
setting a password, disabling and enabling, the demo's accounts.  Signing in and sessions are
the access rules' (`sts.vending.access.operators`)."""

from __future__ import annotations

import secrets

from sqlalchemy import delete, insert, select, update

from sts.errors import InputError, UnknownRecord
from sts.vending.access.operators import check_password, hash_password
from sts.vending.access.policy import check_role
from sts.vending.registry.admin import Registry
from sts.vending.storage.tables import operators
from sts.vending.storage.tables_office import operator_credentials, web_sessions


def set_password(reg: Registry, username: str, password: str) -> None:
    """Give an operator a (new) password; unlocks the account.  Audited."""
    check_password(password)
    digest = hash_password(password)
    now = reg.clock().replace(microsecond=0)
    with reg.db.begin() as conn:
        oid = conn.scalar(select(operators.c.id).where(operators.c.username == username))
        if oid is None:
            raise UnknownRecord(f"operator {username!r} does not exist", field="username")
        conn.execute(delete(operator_credentials).where(operator_credentials.c.operator_id == oid))
        conn.execute(insert(operator_credentials).values(
            operator_id=oid, password_hash=digest, failed_count=0, locked_until=None,
            changed_at=now))
        reg._audit(conn, "operator.password", username)


def add_operator(reg: Registry, username: str, role: str, password: str, *, name: str = "",
                 vendor: str | None = None) -> int:
    """An operator who can sign in to the web pages (vendor/supervisor need their vendor)."""
    check_role(role)
    check_password(password)
    if not username or len(username) > 60 or not username.replace("-", "").replace(
            ".", "").replace("_", "").isalnum():
        raise InputError("username: 1-60 letters, digits, '.', '-' or '_'", field="username")
    if role in ("vendor", "supervisor") and not vendor:
        raise InputError("a vendor or supervisor operator needs the vendor they sell for",
                         field="vendor")
    oid = reg.add_operator(username, role, name=name, vendor=vendor)
    set_password(reg, username, password)
    return oid


def set_active(reg: Registry, username: str, active: bool) -> None:
    """Disable or re-enable an operator; disabling ends their sessions.  Audited."""
    with reg.db.begin() as conn:
        oid = conn.scalar(select(operators.c.id).where(operators.c.username == username))
        if oid is None:
            raise UnknownRecord(f"operator {username!r} does not exist", field="username")
        conn.execute(update(operators).where(operators.c.id == oid).values(active=active))
        if not active:
            conn.execute(delete(web_sessions).where(web_sessions.c.operator_id == oid))
        conn.execute(update(operator_credentials)
                     .where(operator_credentials.c.operator_id == oid)
                     .values(failed_count=0, locked_until=None))
        reg._audit(conn, "operator.enable" if active else "operator.disable", username)


def demo_passwords(reg: Registry) -> dict[str, dict[str, str]]:
    """Random passwords for the demo operators (`demo-<role>`), returned once."""
    out = {}
    for role in ("vendor", "supervisor", "engineer", "admin", "auditor"):
        username, password = f"demo-{role}", secrets.token_urlsafe(12)
        set_password(reg, username, password)
        out[role] = {"username": username, "password": password}
    return out
