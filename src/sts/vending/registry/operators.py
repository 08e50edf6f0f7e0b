"""Operator accounts, as the back office and `sts admin operator` manage them: adding one,
setting a password, disabling and enabling, changing the role, the demo's accounts.  Signing in
and sessions are the access rules' (`sts.vending.access.operators`).

A password reset, a disable and a role change each end the operator's sessions and revoke its
web API-key row: whoever held the old password, or the old rights, is out at once.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, delete, insert, select, update

from sts.errors import InputError, UnknownRecord
from sts.vending.access.operators import check_password, end_sessions, hash_password
from sts.vending.access.policy import check_role
from sts.vending.access.usernames import username_key
from sts.vending.i18n import N_, check_language
from sts.vending.registry.admin import Registry
from sts.vending.storage.tables import operators, vendors
from sts.vending.storage.tables_office import operator_credentials


def _operator(conn: Connection, username: str) -> tuple[int, str]:
    """(id, stored name) of the operator however the name is typed (case, form)."""
    row = conn.execute(select(operators.c.id, operators.c.username)
                       .where(operators.c.username_key == username_key(username))).first()
    if row is None:
        raise UnknownRecord(N_("operator {name} does not exist"), field="username",
                            name=repr(username))
    return int(row.id), str(row.username)


def set_password(reg: Registry, username: str, password: str) -> None:
    """Give an operator a (new) password; unlocks the account, ends its sessions.  Audited."""
    check_password(password)
    digest = hash_password(password)
    now = reg.clock().replace(microsecond=0)
    with reg.db.begin() as conn:
        oid, username = _operator(conn, username)
        conn.execute(delete(operator_credentials).where(operator_credentials.c.operator_id == oid))
        conn.execute(insert(operator_credentials).values(
            operator_id=oid, password_hash=digest, failed_count=0, locked_until=None,
            changed_at=now))
        ended = end_sessions(conn, oid, now=now)
        reg._audit(conn, "operator.password", username, sessions_ended=ended)


def add_operator(reg: Registry, username: str, role: str, password: str, *, name: str = "",
                 vendor: str | None = None) -> int:
    """An operator who can sign in to the web pages (vendor/supervisor need their vendor)."""
    check_role(role)
    check_password(password)
    if role in ("vendor", "supervisor") and not vendor:
        raise InputError(N_("a vendor or supervisor operator needs the vendor they sell for"),
                         field="vendor")
    oid = reg.add_operator(username, role, name=name, vendor=vendor)  # checks the username
    with reg.db.read() as conn:
        stored = str(conn.scalar(select(operators.c.username).where(operators.c.id == oid)))
    set_password(reg, stored, password)
    return oid


def set_active(reg: Registry, username: str, active: bool) -> None:
    """Disable or re-enable an operator; disabling ends their sessions.  Audited."""
    now = reg.clock().replace(microsecond=0)
    with reg.db.begin() as conn:
        oid, username = _operator(conn, username)
        conn.execute(update(operators).where(operators.c.id == oid).values(active=active))
        ended = 0 if active else end_sessions(conn, oid, now=now)
        conn.execute(update(operator_credentials)
                     .where(operator_credentials.c.operator_id == oid)
                     .values(failed_count=0, locked_until=None))
        reg._audit(conn, "operator.enable" if active else "operator.disable", username,
                   sessions_ended=ended)


def set_role(reg: Registry, username: str, role: str, *, vendor: str | None = None) -> None:
    """Give an operator another role (and vendor); ends their sessions.  Audited."""
    check_role(role)
    if role in ("vendor", "supervisor") and not vendor:
        raise InputError(N_("a vendor or supervisor operator needs the vendor they sell for"),
                         field="vendor")
    now = reg.clock().replace(microsecond=0)
    with reg.db.begin() as conn:
        oid, username = _operator(conn, username)
        vid = None
        if vendor:
            vid = conn.scalar(select(vendors.c.id).where(vendors.c.name == vendor))
            if vid is None:
                raise UnknownRecord(N_("vendor {name} does not exist"), field="vendor",
                                    name=repr(vendor))
        conn.execute(update(operators).where(operators.c.id == oid)
                     .values(role=role, vendor_id=vid))
        ended = end_sessions(conn, oid, now=now)
        reg._audit(conn, "operator.role", username, role=role, vendor=vendor,
                   sessions_ended=ended)


def set_language(reg: Registry, username: str, language: str | None) -> None:
    """The language of an operator's pages and slips (`en`, `fr`); None: the utility's.
    Audited."""
    code = None if language in (None, "") else check_language(language)
    with reg.db.begin() as conn:
        oid, username = _operator(conn, username)
        conn.execute(update(operators).where(operators.c.id == oid).values(language=code))
        reg._audit(conn, "operator.language", username, language=code)


def demo_passwords(reg: Registry) -> dict[str, dict[str, str]]:
    """Random passwords for the demo operators (`demo-<role>`), returned once."""
    out = {}
    for role in ("vendor", "supervisor", "engineer", "admin", "auditor"):
        username, password = f"demo-{role}", secrets.token_urlsafe(12)
        set_password(reg, username, password)
        out[role] = {"username": username, "password": password}
    return out
