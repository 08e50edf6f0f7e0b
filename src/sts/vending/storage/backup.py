"""Backing up a vending database and restoring it into an empty one (`sts admin backup`,
`sts admin restore`; docs/operations.md, "Backup and restore").

- SQLite: SQLite's online backup API copies the whole database in one step, inside one read
  transaction: a consistent snapshot while sales go on (in WAL mode writers do not wait for
  readers).  The copy is made self-contained (rollback journal, not WAL), checked
  (`PRAGMA quick_check`) and renamed into place, mode 0600.
- PostgreSQL: `pg_dump --format=custom` (one consistent snapshot too); restored with
  `pg_restore --single-transaction --exit-on-error`.  The connection's password goes to the
  tools in their environment (PGPASSWORD), never on a command line other users can list.

A backup holds what the database holds: sales, tokens, the audit log, and vending keys only as
blobs wrapped by the security module.  It never holds the key-encryption key or the security
module's keys (a KEK file, STS_KEK, a PKCS#11 token): those are kept, and backed up, apart.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sts.errors import ConfigError, InputError
from sts.vending.storage.database import create_private, normalise_url, sqlite_path

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
NOT_IN_BACKUP = ("the key-encryption key and the security module's keys are NOT in this "
                 "backup (only wrapped key blobs are): keep the KEK file / STS_KEK, or the "
                 "PKCS#11 token, backed up separately; without it the restored vending keys "
                 "cannot be used")


@dataclass
class Outcome:
    path: str
    kind: str  # sqlite / pg_dump
    size: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"file": self.path, "format": self.kind, "bytes": self.size,
                "seconds": round(self.seconds, 3), "rows": self.rows,
                "not_included": NOT_IN_BACKUP}


def backup(db_url: str, out: Path) -> Outcome:
    """Write a backup of the database at `db_url` to `out` (replaced only once complete)."""
    url = normalise_url(db_url)
    begun = time.perf_counter()
    src = sqlite_path(url)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    create_private(partial)
    try:
        if src is not None:
            if not src.is_file():
                raise InputError(f"no database file {src}", field="db")
            _sqlite_copy(src, partial, into_new=True)
            kind = "sqlite"
        else:
            _run(_tool("pg_dump"), url, "--format=custom", "--file", str(partial))
            kind = "pg_dump"
        _fsync(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    result = Outcome(str(out), kind, out.stat().st_size, time.perf_counter() - begun)
    result.rows = row_counts(f"sqlite:///{out.resolve()}") if kind == "sqlite" else {}
    return result


def restore(path: Path, db_url: str) -> Outcome:
    """Restore the backup `path` into the empty database at `db_url` (a non-empty one is
    refused: a restore never merges into, or overwrites, a database)."""
    url = normalise_url(db_url)
    begun = time.perf_counter()
    kind = backup_kind(path)
    target = sqlite_path(url)
    if (kind == "sqlite") != (target is not None):
        where = "a SQLite database" if kind == "sqlite" else "a PostgreSQL database"
        raise InputError(f"{path} is a {kind} backup: it restores into {where}", field="db")
    if target is not None:
        if target.exists() and target.stat().st_size > 0 and _tables(url):
            raise InputError(f"the database {target} is not empty: restore only into a new "
                             "or empty database", field="db")
        for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            if stale.exists() and stale.stat().st_size == 0:
                stale.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        create_private(target)
        _sqlite_copy(path, target, into_new=False)
    else:
        if _tables(url):
            raise InputError("the database is not empty: restore only into a new or empty "
                             "database (createdb NAME)", field="db")
        _run(_tool("pg_restore"), url, "--no-owner", "--no-privileges", "--exit-on-error",
             "--single-transaction", str(path))
    result = Outcome(str(path), kind, path.stat().st_size, time.perf_counter() - begun)
    result.rows = row_counts(url)
    return result


def backup_kind(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"cannot read the backup {path}: {exc.strerror}", field="file") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "pg_dump"
    raise InputError(f"{path} is neither a SQLite backup nor a pg_dump custom-format archive",
                     field="file")


def row_counts(db_url: str) -> dict[str, int]:
    """Rows per table (the comparison an operator makes after a restore)."""
    engine = sa.create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            return {n: int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one())
                    for n in names}
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _sqlite_copy(src: Path, dst: Path, *, into_new: bool) -> None:
    """Copy with the online backup API in one step (one consistent snapshot of `src`)."""
    source = sqlite3.connect(str(src), timeout=30)
    target = sqlite3.connect(str(dst), timeout=30)
    try:
        source.backup(target)
        if into_new:  # a self-contained file: no -wal beside it
            target.execute("PRAGMA journal_mode=DELETE")
        check = target.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise ConfigError(f"the copy failed its integrity check: {check}", field="file")
    finally:
        target.close()
        source.close()


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ConfigError(f"{name} was not found on PATH: install the PostgreSQL client tools "
                          "(the same major version as the server or newer), or back up with "
                          "your own pg_dump / point-in-time recovery (docs/operations.md)",
                          field="db")
    return exe


def libpq_env(url: str) -> tuple[dict[str, str], str]:
    """The environment naming the database for libpq tools, and the database name."""
    u = make_url(url)
    env = dict(os.environ)
    for var, value in (("PGHOST", u.host), ("PGPORT", u.port), ("PGUSER", u.username),
                       ("PGPASSWORD", u.password)):
        if value is not None:
            env[var] = str(value)
    for key, option in u.query.items():  # sslmode, sslrootcert, ... as libpq's variables
        if isinstance(option, str) and key.startswith("ssl"):
            env["PG" + key.upper()] = option
    return env, u.database or ""


def _run(exe: str, url: str, *args: str) -> None:
    env, dbname = libpq_env(url)
    cmd = [exe, *args, f"--dbname={dbname}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConfigError(f"{Path(exe).name} failed (exit {done.returncode}): "
                          + " / ".join(tail), field="db")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
