"""What `sts admin migrate` would do, said before it does it (`sts admin migrate --check`), and
whether each migration keeps an older server selling (the rolling-upgrade rule,
docs/operations.md "Upgrades").

Each pending revision's `upgrade()` is run by Alembic in SQL-output mode for the database's
own dialect: its schema statements are written out, never executed.  It runs inside a
transaction that is rolled back, so a revision that reads rows to decide (or fills a new
column row by row) sees the real data and still changes nothing.  A revision Alembic cannot
render without running it (SQLite's copy-and-move of a table) is named with the reason.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from sts.vending.storage.database import Database

SCRIPT_LOCATION = "sts.vending.storage:migrations"


@dataclass(frozen=True)
class Step:
    revision: str
    down_revision: str | None
    doc: str  # the revision's docstring (what and why), without Alembic's header lines
    statements: list[str] = field(default_factory=list)
    note: str = ""  # why there are no statements, when there are none

    @property
    def problems(self) -> list[str]:
        """Why an older server could not keep running beside it (the rolling-upgrade rule)."""
        return rolling_problems(self.statements)

    def public(self) -> dict[str, Any]:
        return {"revision": self.revision, "down_revision": self.down_revision,
                "doc": self.doc, "statements": self.statements, "note": self.note,
                "rolling_upgrade": not self.problems if self.statements else None,
                "problems": self.problems}


def script_directory() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return ScriptDirectory.from_config(cfg)


def _doc(script: Any) -> str:
    text = (script.module.__doc__ or "").strip()
    keep = [line for line in text.splitlines()
            if not re.match(r"(Revision ID|Revises|Create Date):", line.strip())]
    return "\n".join(keep).strip()


def render(script: Any, conn: Any, dialect: str) -> list[str]:
    """The SQL one revision's upgrade() emits for `dialect`, without running it.  `conn` (in a
    transaction the caller rolls back) is what the revision may read, or None."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    buf = io.StringIO()
    opts = {"as_sql": True, "output_buffer": buf, "literal_binds": True}
    if conn is not None:
        ctx = MigrationContext.configure(connection=conn, opts=opts)
    else:
        ctx = MigrationContext.configure(dialect_name=dialect, opts=opts)
    with Operations.context(ctx):
        script.module.upgrade()
    return [s.strip() for s in buf.getvalue().split(";\n") if s.strip()]


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def pending(db: Database) -> tuple[str | None, str, list[Step]]:
    """(the database's revision, the newest one, the steps between them, oldest first)."""
    scripts = script_directory()
    head = scripts.get_current_head()
    current = current_revision(db)
    revs = list(scripts.iterate_revisions(head, current)) if current != head else []
    steps = []
    with db.engine.connect() as conn:
        for script in reversed(revs):
            trans = conn.begin()
            try:
                statements, note = render(script, conn, db.engine.dialect.name), ""
            except Exception as exc:  # Alembic needs to run it to know: say so, and why
                statements = []
                note = ("statements not shown: this revision reads the database or rebuilds "
                        "a table as it runs, so they are known only then "
                        f"({type(exc).__name__})")
            finally:
                trans.rollback()
            if not statements and not note:
                note = "no statement on this database"
            steps.append(Step(script.revision, script.down_revision, _doc(script),
                              statements, note))
    return current, head, steps


# --- the rolling-upgrade rule -----------------------------------------------------------------
# A migration may only add: tables, indexes, nullable columns or columns with a default, rows,
# storage settings, extensions (in a savepoint, so a refusal falls back); it may drop a foreign
# key (an older server never relies on one being checked).  A drop or rename of what a
# released server reads waits two releases (docs/operations.md "Upgrades").

_IGNORED = re.compile(r"^(SELECT|ANALYZE|COMMENT ON|SET |SHOW )|alembic_version", re.I)
_ALLOWED = re.compile(r"^(CREATE TABLE|INSERT INTO|UPDATE |ALTER TABLE \S+ SET \(|"
                      r"ALTER TABLE \S+ DROP CONSTRAINT \"?fk_|CREATE EXTENSION |"
                      r"(RELEASE |ROLLBACK TO )?SAVEPOINT )", re.I)
_ADD_COLUMN = re.compile(r"^ALTER TABLE (\S+) ADD( COLUMN)? \"?(\w+)\"? (.*)$", re.I | re.S)
_INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX (IF NOT EXISTS )?\S+ ON (\S+)"
                    r"(?: USING \w+)? \((.*)\)", re.I | re.S)
_NEW_TABLE = re.compile(r"^CREATE TABLE (IF NOT EXISTS )?(\S+)", re.I)


def _name(raw: str) -> str:
    return raw.strip().strip('"').lower()


def rolling_problems(statements: list[str]) -> list[str]:
    """Why these statements (one revision's) would stop a server one release older: [] when
    they only add."""
    problems: list[str] = []
    new_tables: set[str] = set()
    new_columns: set[tuple[str, str]] = set()
    for raw in statements:
        sql = " ".join(raw.split())
        if _IGNORED.search(sql):
            continue
        if m := _NEW_TABLE.match(sql):
            new_tables.add(_name(m.group(2)))
            continue
        if m := _ADD_COLUMN.match(sql):
            table, column, rest = _name(m.group(1)), _name(m.group(3)), m.group(4).upper()
            new_columns.add((table, column))
            if "NOT NULL" in rest and "DEFAULT" not in rest:
                problems.append(f"{table}.{column} is added NOT NULL without a default: an "
                                "older server's inserts would fail")
            continue
        if m := _INDEX.match(sql):
            table = _name(m.group(3))
            cols = {_name(c) for c in m.group(4).split(",")}
            if m.group(1) and table not in new_tables and \
                    not all((table, c) in new_columns for c in cols):
                problems.append(f"a unique index on existing columns of {table} could refuse "
                                "an older server's writes")
            continue
        if _ALLOWED.match(sql):
            continue
        problems.append(f"not additive: {sql[:100]}")
    return problems
