"""Database access: engine set-up for SQLite (embedded default) and PostgreSQL, migrations.

Every write runs in one transaction (`Database.begin`).  On SQLite that transaction starts
with BEGIN IMMEDIATE, which takes the database write lock up front, so concurrent processes
serialise instead of failing half-way; on PostgreSQL rows are locked with SELECT ... FOR
UPDATE (`Database.locked`).  Nothing here keeps state that other processes would need.

PostgreSQL may give up a transaction to another (deadlock, serialization failure, lock
timeout): `begin` turns that into `DatabaseBusy` (503, retry the same request) instead of a
fault, and `Database.retrying` redoes a whole use case a few times before letting it out.
Migrations on PostgreSQL run one revision per transaction, each waiting at most
`MIGRATION_LOCK_TIMEOUT_MS` for a lock and retried with backoff, so a migration beside live
sales waits its turn instead of deadlocking them (docs/operations.md "Rolling upgrade").
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

from sts.errors import ConfigError, DatabaseBusy, Unavailable

DEFAULT_SQLITE_FILE = "sts-vending.sqlite3"
MIGRATION_LOCK = 62055041  # pg_advisory_lock key: one migrator at a time
# a migration step waits this long for each lock, well under PostgreSQL's deadlock_timeout
# (1 s by default): in a lock cycle with a sale the migration gives up first, never the sale
MIGRATION_LOCK_TIMEOUT_MS = 200
MIGRATION_ATTEMPTS = 40  # per revision; with the backoff below, about a minute of waiting
# SQLSTATEs after which PostgreSQL has rolled the transaction back and the same work can be
# done again: deadlock_detected, serialization_failure, lock_not_available
CONTENTION = {"40P01": "a deadlock", "40001": "a serialization failure",
              "55P03": "a lock not granted in time"}
T = TypeVar("T")
log = logging.getLogger(__name__)


def contention(exc: BaseException) -> str | None:
    """What PostgreSQL gave the transaction up for (None: not a contention error).  `exc` is
    SQLAlchemy's wrapper or the driver's own error (the hot path's raw cursors raise those)."""
    state = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return CONTENTION.get(state) if isinstance(state, str) else None


def backoff(attempt: int, *, base: float = 0.02, cap: float = 0.5) -> float:
    """Seconds to wait before attempt `attempt + 1`: doubling from `base`, capped, jittered so
    that two transactions that collided do not collide again in step."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2.0 ** attempt)


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
        # how often `retrying` runs a use case that PostgreSQL gave up to another transaction,
        # and how it waits between runs (tests count the waits instead)
        self.attempts = 5
        self.pause: Callable[[float], None] = time.sleep
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
        except Exception as exc:
            if self.is_sqlite and isinstance(exc, OperationalError) and \
                    "locked" in str(exc).lower():
                raise Unavailable("the database is busy; retry the same request") from None
            if (why := contention(exc)) is not None:
                raise DatabaseBusy(f"the database gave this request up after {why} with "
                                   "another; nothing was stored, retry the same request"
                                   ) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (on SQLite it does not take the write lock)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(sts_read=True)
                yield conn
        except Exception as exc:
            if (why := contention(exc)) is not None:
                raise DatabaseBusy(f"the database gave this read up after {why} with "
                                   "another; retry the same request") from exc
            raise

    def retrying(self, work: Callable[[], T]) -> T:
        """`work()` (one or more whole transactions), done again when PostgreSQL gave it up
        to another transaction (`DatabaseBusy`): each run was rolled back whole, and request
        ids make a redone sale exact.  After `attempts` runs the last `DatabaseBusy` goes
        out (503: retry the same request)."""
        for attempt in range(self.attempts):
            try:
                return work()
            except DatabaseBusy as exc:
                if attempt + 1 >= self.attempts:
                    raise
                log.info("transaction redone after contention", extra={
                    "attempt": attempt + 1, "reason": str(exc.__cause__ or exc)[:200]})
                self.pause(backoff(attempt))
        raise AssertionError("unreachable")

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
    """Bring the schema to the newest revision; safe to call from several processes, and
    beside servers that keep selling (PostgreSQL: see `_migrate_postgres`)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _alembic_config()
    if not db.is_sqlite:
        return _migrate_postgres(db, cfg)
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        rev = MigrationContext.configure(conn).get_current_revision()
    return rev or ""


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "sts.vending.storage:migrations")
    return cfg


def _migrate_postgres(db: Database, cfg: Any) -> str:
    """One migrator at a time (a session advisory lock); then each pending revision in its
    own transaction, which waits at most MIGRATION_LOCK_TIMEOUT_MS for any lock and is redone
    with backoff when it waited too long or lost a deadlock: live sales keep their locks and
    finish, and the migration takes its turn between them."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(cfg)
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        conn.commit()
        try:
            current = MigrationContext.configure(conn).get_current_revision()
            conn.commit()
            head = scripts.get_current_head() or ""
            if current is None:  # a new database: no server sells on it yet, one transaction
                _migration_step(db, conn, cfg, scripts, head)
            elif current != head:
                for script in reversed(list(scripts.iterate_revisions(head, current))):
                    _migration_step(db, conn, cfg, scripts, script.revision)
            rev = MigrationContext.configure(conn).get_current_revision()
            conn.commit()
        finally:
            try:
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                conn.commit()
            except DBAPIError:  # a lost connection: its session lock went with it
                conn.invalidate()
    return rev or ""


def _migration_step(db: Database, conn: Connection, cfg: Any, scripts: Any,
                    revision: str) -> None:
    """Upgrade to `revision` in one transaction (what `alembic.command.upgrade` does, with the
    revision scripts loaded once for all steps), redone while PostgreSQL gives it up."""
    from alembic.runtime.environment import EnvironmentContext

    def upgrade(rev: Any, _context: Any) -> Any:
        return scripts._upgrade_revs(revision, rev)

    for attempt in range(MIGRATION_ATTEMPTS):
        try:
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {MIGRATION_LOCK_TIMEOUT_MS}")
                cfg.attributes["connection"] = conn
                with EnvironmentContext(cfg, scripts, fn=upgrade, destination_rev=revision):
                    scripts.run_env()
            return
        except Exception as exc:
            why = contention(exc)
            if why is None:
                raise
            if attempt + 1 >= MIGRATION_ATTEMPTS:
                raise DatabaseBusy(
                    f"migration {revision} could not take its locks after {attempt + 1} "
                    f"tries ({why}): a long transaction holds the tables it changes; "
                    "nothing of it was applied, run it again") from exc
            log.info("migration step redone", extra={"revision": revision,
                                                      "attempt": attempt + 1, "reason": why})
            db.pause(backoff(attempt, base=0.05, cap=2.0))
