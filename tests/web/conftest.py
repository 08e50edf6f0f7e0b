"""Browser tests of the web pages: a real `sts serve` (SQLite and PostgreSQL) with demo data,
driven by Playwright in Debian's Chromium.

Outside CI a missing /usr/bin/chromium (or Playwright) skips these tests; under CI=true it
fails them.  Screenshots go to test-artifacts/web/ (ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import IN_CI, pg_worker_url
from tests.support.server import Server

CHROMIUM = os.environ.get("STS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
               "--disable-dev-shm-usage"]


@dataclass
class Site:
    url: str
    backend: str
    operators: dict[str, dict[str, str]]
    meters: list[str]
    server: Server
    db_url: str

    def drn(self, i: int) -> str:
        pan = self.meters[i]
        return pan[6:17]

    def password(self, role: str) -> str:
        return self.operators[role]["password"]


def _demo(url: str, kek: str) -> dict[str, Any]:
    """The demo data set (what `sts admin demo --json` makes), plus a trainee (the simulator),
    an account to lock out (its own: a locked trainee would fail whichever test signs in as one
    later on the same site) and a second administrator."""
    from sts.vending.config import Settings, open_service
    from sts.vending.registry import operators as operator_admin
    from sts.vending.registry.admin import Registry, fill_demo

    svc = open_service(Settings(db_url=url, kek_file=kek), run_migrations=True)
    try:
        reg = Registry(svc.db, svc.sm, actor="tests")
        info = fill_demo(reg, production_tables=False, meters_count=8)
        info["operators"] = operator_admin.demo_passwords(reg)
        password = os.urandom(9).hex()
        operator_admin.add_operator(reg, "trainee", "auditor", password)
        info["operators"]["trainee"] = {"username": "trainee", "password": password}
        password = os.urandom(9).hex()
        operator_admin.add_operator(reg, "lockme", "auditor", password)
        info["operators"]["lockme"] = {"username": "lockme", "password": password}
        # a second administrator: approves the first one's large float top-ups (four-eyes)
        password = os.urandom(9).hex()
        operator_admin.add_operator(reg, "approver", "admin", password)
        info["operators"]["approver"] = {"username": "approver", "password": password}
    finally:
        svc.db.dispose()
    return info


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres",
                                                                 marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         worker_id: str) -> Iterator[Site]:
    """One server per backend (per test process); the tests use different meters."""
    tmp = tmp_path_factory.mktemp("web")
    kek = tmp / "kek.hex"
    kek.write_text(os.urandom(32).hex())
    kek.chmod(0o600)
    sqlite = request.param == "sqlite"
    url = str(tmp / "web.sqlite3") if sqlite else pg_worker_url(f"{worker_id}web")
    info = _demo(url, str(kek))
    server = Server(url, str(kek), log=tmp / "server.log").start(timeout=60)
    try:
        yield Site(server.url, request.param, info["operators"], info["meters"], server, url)
    finally:
        server.stop()
        if request.param == "postgres":
            _drop(url)


def _drop(url: str) -> None:
    import sqlalchemy as sa

    from tests.fixtures import _CREATED

    base, _, name = url.rpartition("/")
    eng = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    eng.dispose()
    _CREATED.discard(name)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI run without Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("playwright is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages in fresh browser contexts (each its own cookies); closed after the test."""
    contexts = []

    def make(**kw: Any) -> Any:
        kw.setdefault("viewport", {"width": 1180, "height": 820})
        ctx = browser.new_context(**kw)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def shot(page: Any, name: str, site: Site, *, full: bool = True) -> None:
    """Save a screenshot (SQLite runs only: one set is enough to look at)."""
    if site.backend != "sqlite":
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def sign_in(page: Any, site: Site, role: str, *, next_path: str = "") -> None:
    page.goto(site.url + "/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Username").fill(site.operators[role]["username"])
    page.get_by_label("Password").fill(site.password(role))
    page.get_by_role("button", name="Sign in").click()
    # signed in once the browser has left the sign-in page (argon2 on a busy host is slow:
    # waited for here, not inside the next step's element wait); a refusal fails at once,
    # with the page's reason
    error = page.locator("#login-error")
    signed_in = page.locator("form[action='/logout']")  # on every page once signed in
    signed_in.or_(error).first.wait_for(timeout=60_000)
    if error.count():
        pytest.fail(f"sign-in as {role} refused: {error.inner_text()}")
    page.wait_for_load_state()


# the vending fixtures (service on SQLite and PostgreSQL, demo data, fake clock) for the tests
# of the vending modules the pages call


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium are marked `browser` (the quick loop leaves them out)."""
    for item in items:
        if {"browser", "new_page", "site"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
