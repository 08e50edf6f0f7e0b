"""Sign-in hardening (issue 17, item 7), on SQLite and PostgreSQL: refusals are audited even
though the sign-in fails, unknown and known names get the same answer after the same argon2
work, X-Forwarded-For is believed only from named proxies, usernames are one spelling and one
script, and a password reset, disable or role change ends the operator's sessions."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import sqlalchemy as sa

from sts.errors import AlreadyExists, InputError, NotAuthenticated
from sts.vending.access import credentials, operators
from sts.vending.access.passwords import PASSWORDS
from sts.vending.registry import operators as operator_admin
from sts.vending.storage.tables import api_keys, audit_log

SECRET = "a long enough secret"


def _actions(db: Any, subject: str) -> list[str]:
    with db.read() as conn:
        return list(conn.scalars(sa.select(audit_log.c.action)
                                 .where(audit_log.c.subject == subject)
                                 .order_by(audit_log.c.seq)))


def _refusal(db: Any, clock: Any, username: str, password: str) -> str:
    with pytest.raises(NotAuthenticated) as err:
        operators.sign_in(db, username, password, address="10.0.0.9", now=clock())
    return err.value.message


@pytest.mark.slow
def test_every_refusal_is_audited_unknown_names_and_locked_accounts_too(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    operator_admin.add_operator(demo.registry, "till7", "vendor", SECRET, vendor="Demo Vendor")
    _refusal(db, clock, "nobody-here", "whatever123")
    assert _actions(db, "nobody-here") == ["login.failed"]
    for _ in range(operators.LOCK_AFTER):
        _refusal(db, clock, "till7", "wrong password")
    _refusal(db, clock, "till7", SECRET)  # locked: the right password does not help
    assert _actions(db, "till7") == ["operator.add", "operator.password"] + \
        ["login.failed"] * operators.LOCK_AFTER + ["login.lockout", "login.locked"]


class _CountingHasher:
    """The argon2 hasher, counting verifications."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.verified = inner, 0

    def verify(self, stored: str, password: str) -> bool:
        self.verified += 1
        return bool(self.inner.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.slow
def test_unknown_and_known_names_get_the_same_answer_and_work(
        demo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, clock = demo.service.db, demo.clock
    operator_admin.add_operator(demo.registry, "till8", "vendor", SECRET, vendor="Demo Vendor")
    spy = _CountingHasher(PASSWORDS)  # the hasher operators signs in with
    monkeypatch.setattr(operators, "PASSWORDS", spy)
    known = [_refusal(db, clock, "till8", "wrong password") for _ in range(7)]
    unknown = [_refusal(db, clock, "till-none", "wrong password") for _ in range(7)]
    assert known == unknown and len(set(known)) == 1
    assert _refusal(db, clock, "till8", SECRET) == known[0]  # locked, right password
    assert spy.verified == 15  # one argon2 verify per attempt, locked or unknown alike


@pytest.mark.slow
def test_forwarded_for_is_believed_only_from_named_proxies(settings: Any, service: Any) -> None:
    import uvicorn
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    def statuses(allow: str | None) -> list[int]:
        options = dataclasses.replace(settings, forwarded_allow_ips=allow).uvicorn_options()
        config = uvicorn.Config(create_app(service), **options)
        config.load()  # the app as uvicorn serves it, with or without its proxy middleware
        client = TestClient(config.loaded_app, client=("127.0.0.1", 40000),
                            raise_server_exceptions=False)
        out = []
        for i in range(8):
            page = client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            out.append(client.post("/login", data={"csrf": csrf[1], "username": "x-nobody",
                                                   "password": "wrong password"},
                                   headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code)
        return out

    service.signin_limit = 5  # a few attempts are enough to show whose address counts
    assert 429 in statuses(None)  # by default the loopback peer is the client: throttled
    with service.db.begin() as conn:
        conn.execute(sa.text("DELETE FROM rate_counters"))
    assert 429 not in statuses("127.0.0.1")  # a named proxy: each forwarded address counts
    with service.db.begin() as conn:
        conn.execute(sa.text("DELETE FROM rate_counters"))
    service.signin_limit = 10  # --signin-limit: the tills of a shop behind one address
    assert 429 not in statuses(None)


def test_secure_cookie_when_https_itself_or_from_a_named_proxy(settings: Any,
                                                               service: Any) -> None:
    import uvicorn
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    def cookie_flags(allow: str | None) -> str:
        options = dataclasses.replace(settings, forwarded_allow_ips=allow).uvicorn_options()
        config = uvicorn.Config(create_app(service), **options)
        config.load()
        client = TestClient(config.loaded_app, client=("127.0.0.1", 40000))
        page = client.get("/login", headers={"X-Forwarded-Proto": "https"})
        cookie: str = page.headers.get("set-cookie", "")
        return cookie.lower()

    assert "secure" not in cookie_flags(None)  # anyone may send the header: not believed
    assert "secure" in cookie_flags("127.0.0.1")  # the named proxy terminated TLS


def test_serve_passes_the_proxy_setting_to_uvicorn(tmp_path: Any, kek_file: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from click.testing import CliRunner

    from sts.cli.vending import serve

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append(kw))
    base = ["--db", str(tmp_path / "s.sqlite3"), "--kek-file", kek_file, "--no-deliver"]
    for extra in ([], ["--forwarded-allow-ips", "10.0.0.1"]):
        out = CliRunner().invoke(serve, base + extra, catch_exceptions=False)
        assert out.exit_code == 0, out.output
    assert seen[0]["proxy_headers"] is False and "forwarded_allow_ips" not in seen[0]
    assert seen[1]["proxy_headers"] is True and seen[1]["forwarded_allow_ips"] == "10.0.0.1"


@pytest.mark.slow
def test_usernames_are_one_spelling_and_one_script(demo: Any) -> None:
    db, clock, reg = demo.service.db, demo.clock, demo.registry
    accounts = operator_admin.demo_passwords(reg)
    op, _ = operators.sign_in(db, "Demo-Admin", accounts["admin"]["password"], address="t",
                              now=clock())
    assert op.username == "demo-admin"
    with pytest.raises(InputError) as err:
        operator_admin.add_operator(reg, "d\u0435mo-admin", "admin", SECRET)  # Cyrillic е
    assert err.value.field == "username" and "script" in err.value.message
    for look_alike in ("Demo-Admin", "\uff44emo-admin"):  # case; fullwidth d
        with pytest.raises(AlreadyExists) as taken:
            operator_admin.add_operator(reg, look_alike, "admin", SECRET)
        assert taken.value.field == "username"
    operator_admin.add_operator(reg, "\u0434\u0435\u043c\u043e", "auditor", SECRET)  # all Cyrillic
    operator_admin.set_password(reg, "DEMO-AUDITOR", SECRET)  # admin finds names the same way
    assert operators.sign_in(db, "demo-auditor", SECRET, address="t", now=clock())[0].role \
        == "auditor"

    name, password = credentials.issue(db, vendor="Demo Vendor", username="Switch-One",
                                       now=clock())
    assert name == "Switch-One"  # stored as given, compared case-folded
    with pytest.raises(AlreadyExists) as dup:
        credentials.issue(db, vendor="Demo Vendor", username="switch-one", now=clock())
    assert dup.value.field == "username"
    with db.read() as conn:
        assert credentials.authenticate(conn, "SWITCH-ONE", password).username == "SWITCH-ONE"


def _web_keys(db: Any, operator_id: int) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.select(api_keys.c.revoked_at)
                                 .where(api_keys.c.operator_id == operator_id)))


@pytest.mark.parametrize("change", ["password", "disable", "role"])
def test_reset_disable_or_role_change_ends_sessions(demo: Any, change: str) -> None:
    db, clock, reg = demo.service.db, demo.clock, demo.registry
    operator_admin.add_operator(reg, "till9", "supervisor", SECRET, vendor="Demo Vendor")
    op, token = operators.sign_in(db, "till9", SECRET, address="t", now=clock())
    operators.caller(db, op, now=clock())  # its web API-key row
    assert [k.revoked_at for k in _web_keys(db, op.id)] == [None]
    if change == "password":
        operator_admin.set_password(reg, "till9", "another long secret")
    elif change == "disable":
        operator_admin.set_active(reg, "till9", False)
        operator_admin.set_active(reg, "till9", True)  # enabling again does not revive it
    else:
        operator_admin.set_role(reg, "till9", "vendor", vendor="Demo Vendor")
    assert operators.session(db, token, now=clock()) is None
    assert all(k.revoked_at is not None for k in _web_keys(db, op.id))
    assert f"operator.{change}" in _actions(db, "till9") or change == "disable"


@pytest.mark.slow
def test_operator_role_command(db_url: str, kek_file: str) -> None:
    from click.testing import CliRunner

    from sts.cli.vending import admin
    from sts.vending.storage.database import Database
    from sts.vending.storage.tables import operators as operator_rows

    base = ["--db", db_url, "--kek-file", kek_file]
    assert CliRunner().invoke(admin, [*base, "demo", "--json"]).exit_code == 0
    out = CliRunner().invoke(admin, [*base, "operator", "role", "Demo-Vendor", "auditor"],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    db = Database(db_url)
    try:
        with db.read() as conn:
            assert conn.scalar(sa.select(operator_rows.c.role)
                               .where(operator_rows.c.username == "demo-vendor")) == "auditor"
    finally:
        db.dispose()


@pytest.mark.slow
def test_admin_cannot_disable_itself_by_typing_its_name_differently(demo: Any) -> None:
    from sts.web.common import COOKIE

    db, clock = demo.service.db, demo.clock
    accounts = operator_admin.demo_passwords(demo.registry)
    op, token = operators.sign_in(db, "demo-admin", accounts["admin"]["password"],
                                  address="t", now=clock())
    demo.client.cookies.set(COOKIE, token)
    try:
        out = demo.client.post("/admin/operators/state", data={
            "csrf": op.csrf, "username": "DEMO-ADMIN", "action": "disable"})
    finally:
        demo.client.cookies.clear()
    assert "cannot change your own account" in out.text
    assert operators.session(db, token, now=clock()) is not None  # still signed in


def test_a_password_hashed_with_older_parameters_is_rehashed_at_sign_in(demo: Any) -> None:
    from argon2 import PasswordHasher

    from sts.vending.access.passwords import PASSWORDS
    from sts.vending.storage.tables_office import operator_credentials as oc

    db, clock = demo.service.db, demo.clock
    ids = operator_admin.add_operator(demo.registry, "till9", "vendor", SECRET,
                                      vendor="Demo Vendor")
    older = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(SECRET)
    with db.begin() as conn:
        conn.execute(sa.update(oc).where(oc.c.operator_id == ids).values(password_hash=older))
    operators.sign_in(db, "till9", SECRET, address="10.0.0.7", now=clock())
    with db.read() as conn:
        stored = conn.scalar(sa.select(oc.c.password_hash).where(oc.c.operator_id == ids))
    assert stored != older and not PASSWORDS.check_needs_rehash(stored)
    assert PASSWORDS.verify(stored, SECRET)
