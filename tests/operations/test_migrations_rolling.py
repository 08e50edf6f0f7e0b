"""Migrations keep an older server selling (issue 21, point 6): every revision after the first
only adds (checked on the statements it really runs on PostgreSQL, where several servers
share a database), and `sts admin migrate --check` says what is pending without doing it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner

from sts.cli.vending import admin
from sts.errors import DatabaseBusy
from sts.vending.storage import database
from sts.vending.storage.database import Database, migrate
from sts.vending.storage.migration_plan import (
    SCRIPT_LOCATION,
    current_revision,
    rolling_problems,
    script_directory,
)

# the first schema has no older server to keep running
BEFORE_THE_RULE = {"0001_initial_schema"}


def _upgrade(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _revisions() -> list[Any]:
    return list(reversed(list(script_directory().walk_revisions())))


def test_the_rule_refuses_what_an_older_server_cannot_live_with() -> None:
    assert rolling_problems(["CREATE TABLE t (id INTEGER NOT NULL)",
                             "ALTER TABLE meters ADD COLUMN note VARCHAR(10)",
                             "ALTER TABLE meters ADD COLUMN n INTEGER DEFAULT '0' NOT NULL",
                             "CREATE UNIQUE INDEX ux_t ON t (id)",
                             "ALTER TABLE tokens DROP CONSTRAINT fk_tokens_meter_id"]) == []
    bad = rolling_problems(["ALTER TABLE meters DROP COLUMN ami",
                            "ALTER TABLE meters RENAME COLUMN pan TO drn",
                            "ALTER TABLE meters ADD COLUMN x INTEGER NOT NULL",
                            "CREATE UNIQUE INDEX ux_m ON meters (ti)",
                            "DROP TABLE tokens",
                            "ALTER TABLE meters ALTER COLUMN ti TYPE BIGINT"])
    assert len(bad) == 6 and "meters.x" in bad[2] and "unique" in bad[3]


def test_every_migration_only_adds(empty_db_url: str) -> None:
    """Each revision upgraded alone, its executed statements recorded and judged."""
    db_url = empty_db_url
    db = Database(db_url)
    if db.is_sqlite:
        db.dispose()
        pytest.skip("several servers share PostgreSQL only; SQLite's table rebuilds are one "
                    "host's business")
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    problems = {}
    try:
        for script in _revisions():
            seen.clear()
            _upgrade(db, script.revision)
            assert seen, script.revision
            if script.revision not in BEFORE_THE_RULE:
                problems[script.revision] = rolling_problems(list(seen))
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
        db.dispose()
    assert problems and {r: p for r, p in problems.items() if p} == {}


def test_migrate_check_says_what_is_pending_and_changes_nothing(empty_db_url: str,
                                                                  kek_file: str) -> None:
    db_url = empty_db_url
    revisions = _revisions()
    head, previous = revisions[-1], revisions[-2]
    db = Database(db_url)
    try:
        _upgrade(db, previous.revision)
        args = ["--db", db_url, "--kek-file", kek_file, "migrate", "--check"]
        res = CliRunner().invoke(admin, args)
        assert res.exit_code == 1, res.output
        assert f"schema at revision {previous.revision}" in res.output
        assert f"== {head.revision} (after {previous.revision})" in res.output
        first_line = (head.module.__doc__ or "").strip().splitlines()[0]
        assert first_line in res.output
        assert current_revision(db) == previous.revision  # nothing was done
        res = CliRunner().invoke(admin, [*args, "--json"])
        plan = json.loads(res.output)
        assert res.exit_code == 1 and plan["revision"] == previous.revision
        assert [s["revision"] for s in plan["pending"]] == [head.revision]
        step = plan["pending"][0]
        assert step["statements"] or step["note"]
        if step["statements"]:
            assert step["rolling_upgrade"] is True and step["problems"] == []
        assert migrate(db) == head.revision
        res = CliRunner().invoke(admin, args)
        assert res.exit_code == 0 and "no migration pending" in res.output
    finally:
        db.dispose()


def test_a_migration_waits_its_turn_behind_a_live_transaction(
        empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL each revision waits at most a short lock_timeout for a lock and is redone
    with backoff: a transaction holding what the revision needs (here the version row every
    revision writes) delays it, never deadlocks it; when the tries run out the migration stops
    with a clear busy error and nothing of that revision applied."""
    db = Database(empty_db_url)
    if db.is_sqlite:
        db.dispose()
        pytest.skip("SQLite migrates under its write lock, taken up front like any writer's")
    revisions = _revisions()
    head, previous = revisions[-1], revisions[-2]
    other = sa.create_engine(db.engine.url)
    try:
        _upgrade(db, previous.revision)
        with other.connect() as blocker:
            blocker.exec_driver_sql("SELECT version_num FROM alembic_version FOR UPDATE")
            waits: list[float] = []
            db.pause = waits.append  # no release: every try times out
            monkeypatch.setattr(database, "MIGRATION_ATTEMPTS", 2)
            with pytest.raises(DatabaseBusy, match=f"migration {head.revision} could not take"):
                migrate(db)
            assert len(waits) == 1 and current_revision(db) == previous.revision

            def release(seconds: float) -> None:  # the live transaction ends during the wait
                waits.append(seconds)
                blocker.commit()

            waits.clear()
            db.pause = release
            assert migrate(db) == head.revision
            assert len(waits) == 1 and 0 < waits[0] <= 2.0
    finally:
        other.dispose()
        db.dispose()
