"""A real SoftHSM2 token for the PKCS#11 tests, made with `softhsm2-util` in a temporary
SOFTHSM2_CONF directory (one per test process, since PKCS#11 reads its configuration once per
process).  Under CI=true a missing SoftHSM2 is a failure; elsewhere these tests are skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import fixtures as vending
from tests.conftest import IN_CI
from tests.fixtures import _CREATED, PG_URL, _pg_admin_url

SOFTHSM_LIBS = ("/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/local/lib/softhsm/libsofthsm2.so")
TOKEN = "sts-test"
PIN = "246810"
SO_PIN = "13579135"


class ManualClock:
    """Monotonic seconds that move only when told to (the decoder key cache's clock)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class SoftHsm:
    lib: str
    conf: str
    token: str
    pin: str
    directory: Path

    def env(self, pin: str | None = None) -> dict[str, str]:
        return {"SOFTHSM2_CONF": self.conf, "STS_SECURITY_MODULE": "pkcs11",
                "STS_PKCS11_LIB": self.lib, "STS_PKCS11_TOKEN": self.token,
                "STS_PKCS11_PIN": pin or self.pin}

    def module(self, *, pin: str | None = None, lib: str | None = None,
               clock: Any = None, cache_seconds: float = 300.0, software: Any = None,
               sta_tables: str | None = None) -> Any:
        from sts.vending.keys.pkcs11 import Pkcs11SecurityModule

        chosen = self.pin if pin is None else pin
        kw: dict[str, Any] = {}
        if clock is not None:
            kw["clock"] = clock
        return Pkcs11SecurityModule(lib or self.lib, self.token, pin=lambda: chosen,
                                    cache_seconds=cache_seconds, software=software,
                                    sta_tables=sta_tables, **kw)


def _find_lib() -> str | None:
    for path in SOFTHSM_LIBS:
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    lib = _find_lib()
    util = shutil.which("softhsm2-util")
    if lib is None or util is None:
        if IN_CI:
            raise RuntimeError("CI run without SoftHSM2 (softhsm2-util and libsofthsm2.so)")
        pytest.skip("SoftHSM2 is not installed")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                    "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n")
    env = os.environ | {"SOFTHSM2_CONF": str(conf)}
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN,
                    "--pin", PIN], env=env, check=True, capture_output=True)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the library when first loaded
    yield SoftHsm(lib, str(conf), TOKEN, PIN, directory)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_clock() -> ManualClock:
    return ManualClock()


# --- a vending service whose keys live in the token ----------------------------------------------



# the vending tests' fixtures, shared (SQLite and PostgreSQL, the fake vending clock, a KEK)
db_url = vending.db_url
clock = vending.clock
kek_file = vending.kek_file
settings = vending.settings


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop this process's PostgreSQL databases (when only tests/hsm ran, the vending
    conftest's own hook is not registered)."""
    if not _CREATED:
        return
    import sqlalchemy as sa

    admin_url, _ = _pg_admin_url(PG_URL)
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        for db_name in list(_CREATED):
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    eng.dispose()


@pytest.fixture
def pin_file(tmp_path: Path, softhsm: SoftHsm) -> str:
    path = tmp_path / "pin"
    path.write_text(softhsm.pin + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def hsm_settings(db_url: str, kek_file: str, softhsm: SoftHsm, pin_file: str) -> Any:
    from sts.vending.config import Settings

    return Settings(db_url=db_url, kek_file=kek_file, lookup_limit=1000,
                    security_module="pkcs11", pkcs11_lib=softhsm.lib,
                    pkcs11_token=softhsm.token, pkcs11_pin_file=pin_file)


def destroy_module_keys(db: Any, sm: Any) -> None:
    """Remove from the token the key objects this test's database points at (the token is
    shared by the tests of one process)."""
    from sqlalchemy import select

    from sts.vending.keys.pkcs11 import blob_label
    from sts.vending.storage.tables import vending_keys

    with db.read() as conn:
        blobs = [r.blob for r in conn.execute(select(vending_keys.c.blob)
                                              .where(vending_keys.c.module == "pkcs11"))]
    labels = [blob_label(b) for b in blobs]

    def op(session: Any) -> None:
        from pkcs11 import Attribute

        for label in labels:
            for obj in session.get_objects({Attribute.LABEL: label}):
                obj.destroy()

    sm._run("test clean-up", op)


@pytest.fixture
def hsm_service(hsm_settings: Any, clock: Any) -> Iterator[Any]:
    from sts.vending.config import open_service

    svc = open_service(hsm_settings, clock=clock, run_migrations=True)
    yield svc
    try:
        destroy_module_keys(svc.db, svc.sm)
    finally:
        svc.sm.close()
        svc.db.dispose()
