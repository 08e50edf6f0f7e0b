"""Fixtures shared by every test package (registered as a plugin by tests/conftest.py): every
database test runs on SQLite and PostgreSQL.

PostgreSQL comes from STS_TEST_PG_URL (default: the local server, database sts_vending_test);
each xdist worker gets its own database, migrated once and brought back to the state its
migrations left before every test (SQLite's is a copy of a migrated file).  Under CI=true an unreachable
PostgreSQL fails the run; elsewhere those tests are skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("STS_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_vending_test")
TEST_VENDING_KEY = bytes.fromhex("abababababababab949494949494949401234567")
START = datetime(2025, 3, 3, 10, 0, 0)
KNOWN_SGC = "999920"


class FakeClock:
    """Vending time that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


def _pg_admin_url(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base + "/postgres", name


# one id per test run, inherited by the xdist workers: concurrent runs never share a database
RUN_ID = os.environ.setdefault("STS_TEST_RUN_ID", str(os.getpid()))
_CREATED: set[str] = set()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the databases this process created (a crash leaves them for the next cleanup)."""
    if not _CREATED:
        return
    import sqlalchemy as sa

    admin_url, _ = _pg_admin_url(PG_URL)
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        for db_name in _CREATED:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    eng.dispose()


def _pg_admin() -> Any:
    import sqlalchemy as sa

    admin_url, _ = _pg_admin_url(PG_URL)
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")


_SHAPE = ("SELECT (SELECT string_agg(version_num, ',') FROM alembic_version), "
          "(SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'), "
          "(SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')")


@dataclass
class _Migrated:
    """What a worker database looked like just after its migrations: its shape (revision,
    columns, indexes), the rows the migrations themselves wrote, its tables and sequences."""

    shape: tuple[Any, ...]
    tables: list[str]
    sequences: dict[str, tuple[int, bool]]
    seeds: dict[str, list[dict[str, Any]]]


_MIGRATED: dict[str, _Migrated] = {}


def _pg_migrated(url: str) -> None:
    """Bring a worker database to the state right after its migrations.  The first time (or
    when a test changed its shape: a migration test, a dropped schema) it is emptied and
    migrated; otherwise the rows of the last test are deleted and the migrations' own rows put
    back, a fraction of running every migration again (the migrations have their own tests)."""
    import sqlalchemy as sa

    from sts.vending.storage.database import Database, migrate

    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            known = _MIGRATED.get(url)
            try:
                shape = tuple(conn.exec_driver_sql(_SHAPE).one())
            except sa.exc.DBAPIError:  # no alembic_version: not migrated
                shape = ()
            conn.rollback()
            if known is not None and shape == known.shape:
                # no foreign-key triggers while emptying: any order will do
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                for table in known.tables:
                    conn.exec_driver_sql(f'DELETE FROM "{table}"')
                meta = sa.MetaData()
                for table, rows in known.seeds.items():
                    conn.execute(sa.Table(table, meta, autoload_with=conn).insert(), rows)
                for seq, (value, called) in known.sequences.items():
                    conn.execute(sa.text("SELECT setval(CAST(:s AS regclass), :v, :c)"),
                                 {"s": f'"{seq}"', "v": value, "c": called})
                conn.commit()
                return
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
            conn.commit()
    finally:
        eng.dispose()
    db = Database(url)
    migrate(db)
    db.dispose()
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            tables = [r[0] for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' ORDER BY tablename")]
            sequences = {r.sequencename: (r.last_value or 1, r.last_value is not None)
                         for r in conn.exec_driver_sql(
                             "SELECT sequencename, last_value FROM pg_sequences "
                             "WHERE schemaname = 'public'")}
            seeds = {t: [dict(r._mapping) for r in conn.exec_driver_sql(f'SELECT * FROM "{t}"')]
                     for t in tables}
            _MIGRATED[url] = _Migrated(tuple(conn.exec_driver_sql(_SHAPE).one()), tables,
                                       sequences, {t: rows for t, rows in seeds.items() if rows})
    finally:
        eng.dispose()


def pg_worker_url(worker: str, *, migrated: bool = False) -> str:
    """A per-worker PostgreSQL database: emptied, or (`migrated`) as its migrations left it."""
    import sqlalchemy as sa

    admin_url, name = _pg_admin_url(PG_URL)
    db_name = f"{name}_{RUN_ID}_{worker}"
    url = admin_url.rsplit("/", 1)[0] + "/" + db_name
    try:
        if db_name not in _CREATED:
            eng = _pg_admin()
            with eng.connect() as conn:
                if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                   {"n": db_name}):
                    conn.exec_driver_sql(f'CREATE DATABASE "{db_name}"')
                # a test database need not wait for the disk at each commit (a server crash
                # is the only loss, and no test crashes PostgreSQL)
                conn.exec_driver_sql(f'ALTER DATABASE "{db_name}" SET synchronous_commit = off')
            eng.dispose()
            _CREATED.add(db_name)
    except Exception as exc:
        if IN_CI:
            raise RuntimeError(f"CI run without PostgreSQL at {PG_URL}: {exc}") from exc
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    if migrated:
        _pg_migrated(url)
    else:
        eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        eng.dispose()
    return url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest migration, made once per worker: each test starts
    from a copy instead of running every migration again (the migrations have their own tests)."""
    from sts.vending.storage.database import Database, migrate

    path = tmp_path_factory.mktemp("template") / "vending.sqlite3"
    db = Database(str(path))
    migrate(db)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> str:
    if request.param == "sqlite":
        path = tmp_path / "vending.sqlite3"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return str(path)
    return pg_worker_url(worker_id, migrated=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kek_file(tmp_path: Path) -> str:
    path = tmp_path / "kek.hex"
    path.write_text(secrets.token_bytes(32).hex())
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def settings(db_url: str, kek_file: str) -> Any:
    from sts.vending.config import Settings

    return Settings(db_url=db_url, kek_file=kek_file, lookup_limit=1000)


@pytest.fixture
def service(settings: Any, clock: FakeClock) -> Iterator[Any]:
    from sts.vending.config import open_service

    svc = open_service(settings, clock=clock, run_migrations=True)
    yield svc
    svc.db.dispose()


@dataclass
class Demo:
    service: Any
    registry: Any
    keys: dict[str, str]
    meters: list[str]
    clock: FakeClock
    _client: Any = None

    @property
    def client(self) -> Any:
        """A TestClient of the whole app, made when a test first speaks HTTP (building the
        app's routes costs more than many a test that never asks for it)."""
        if self._client is None:
            from fastapi.testclient import TestClient

            from sts.server.app import create_app

            self._client = TestClient(create_app(self.service), raise_server_exceptions=False)
        return self._client

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def buy(self, meter: str | None = None, amount: str = "100", pid: str | None = None,
            role: str = "vendor", **extra: Any) -> Any:
        pid = pid or str(uuid.uuid4())
        return self.client.post(f"/v1/purchases/{pid}",
                                json={"meter": meter or self.meters[0], "amount": amount, **extra},
                                headers=self.h(role))


def make_demo(service: Any, clock: FakeClock, *, raw_key: bytes | None = TEST_VENDING_KEY) -> Demo:
    from sts.vending.registry.admin import Registry, fill_demo

    reg = Registry(service.db, service.sm, clock=clock)
    info = fill_demo(reg, production_tables=False)
    if raw_key is not None:  # a second SGC on a known key, so tests can check tokens themselves
        reg.add_sgc(KNOWN_SGC, utility="Demo Utility")
        reg.add_key(KNOWN_SGC, 1, raw=raw_key, base_date=2014)
        reg.authorise_vendor("Demo Vendor", KNOWN_SGC)
        reg.add_meter(known_pan(), sgc=KNOWN_SGC, tariff="Flat", ti=1)
    return Demo(service, reg, info["api_keys"], info["meters"], clock)


def known_pan() -> str:
    from sts.codec.pan import MeterPan, luhn_check_digit

    body = "0420000001"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


@pytest.fixture
def demo(service: Any, clock: FakeClock) -> Demo:
    return make_demo(service, clock)


def meter_key(pan: str, *, krn: int = 1, ti: int = 1, base_date: int = 2014,
              vending_key: bytes = TEST_VENDING_KEY, sgc: str = KNOWN_SGC) -> Any:
    """The engine's key for a meter on the known test vending key."""
    from sts.codec.pan import parse_pan
    from sts.crypto.sta import table_set
    from sts.engine import MeterKey

    return MeterKey.derive(dkga=4, vending_key=vending_key, pan=parse_pan(pan), kt=2, sgc=sgc,
                           ti=ti, krn=krn, ea=7, base_date=base_date,
                           table_set=table_set("sample"))


def virtual_meter(pan: str, clock: FakeClock, *, krn: int = 1, ti: int = 1,
                  base_date: int = 2014, sgc: str = KNOWN_SGC) -> Any:
    """A virtual meter (sts.meter) holding the known key, on the vending clock's time."""
    from sts.meter import FakeClock as MeterClock
    from sts.meter import Meter, parse_config
    from sts.meter.clock import EPOCH

    config = parse_config({"pan": pan, "dkga": 4, "ea": 7, "table_set": "sample",
                           "vending_key": TEST_VENDING_KEY.hex(), "kt": 2, "sgc": sgc, "ti": ti,
                           "krn": krn, "ken": 255, "base_date": base_date})
    mclock = MeterClock((clock() - EPOCH).total_seconds())
    return Meter.create(config, mclock)


def vendor_float(demo: Demo, name: str = "Demo Vendor") -> Any:
    """A vendor's float balance now (a Decimal)."""
    from decimal import Decimal

    from sqlalchemy import select

    from sts.vending.storage.tables import vendors

    with demo.service.db.read() as conn:
        return Decimal(conn.scalar(select(vendors.c.float_balance).where(vendors.c.name == name)))
