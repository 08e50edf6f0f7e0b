"""Database access: engine set-up for SQLite (embedded default) and PostgreSQL, migrations.

Every write runs in one transaction (`Database.begin`).  On SQLite that transaction starts
with BEGIN IMMEDIATE, which takes the database write lock up front, so concurrent processes
serialise instead of failing half-way; on PostgreSQL rows are locked with SELECT ... FOR
UPDATE (`Database.locked`).  Nothing here keeps state that other processes would need.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, create_engine, event
from sqlalchemy.exc import OperationalError

from sts.errors import ConfigError, Unavailable

DEFAULT_SQLITE_FILE = "sts-vending.sqlite3"
MIGRATION_LOCK = 62055041  # pg_advisory_xact_lock key: one migrator at a time


def normalise_url(url: str) -> str:
    """Accept a bare file path or `postgresql://` and return a SQLAlchemy URL."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or in-memory)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds wrapped keys and key hashes,
    like the KEK file beside it).  SQLite gives its -wal and -shm files the database file's
    mode, so they are private too.  An existing file is left as its owner set it."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = sqlite_path(self.url)
            if path is None:
                raise ConfigError("use a SQLite file, not an in-memory database", field="db")
            path.parent.mkdir(parents=True, exist_ok=True)
            create_private(path)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _sqlite_setup(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if self.is_sqlite and "locked" in str(exc).lower():
                raise Unavailable("the database is busy; retry the same request") from None
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (on SQLite it does not take the write lock)."""
        with self.engine.connect() as conn:
            conn.execution_options(sts_read=True)
            yield conn

    def locked(self, stmt: Select[Any]) -> Select[Any]:
        """SELECT ... FOR UPDATE on PostgreSQL; SQLite already holds the write lock."""
        return stmt if self.is_sqlite else stmt.with_for_update()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        read = conn.get_execution_options().get("sts_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def migrate(db: Database) -> str:
    """Bring the schema to the newest revision; safe to call from several processes."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", "sts.vending.storage:migrations")
    with db.begin() as conn:
        if not db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        rev = MigrationContext.configure(conn).get_current_revision()
    return rev or ""
