"""Schema migrations over a database that holds sales, on SQLite and PostgreSQL: the newest
revision is what the models declare, and 0007 (tokens without their own meter/key foreign
keys) goes down and up again with every row kept; 0009 (unique username keys) too; 0019 (the
lists' indexes) goes and comes back."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from sts.vending.storage.database import migrate
from sts.vending.storage.tables import tokens
from tests.support.migrations import alembic_config


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()
    assert head is not None
    return head


def _token_fks(engine: sa.Engine) -> set[str]:
    return {fk["referred_table"] for fk in sa.inspect(engine).get_foreign_keys("tokens")}


def test_0007_down_and_up_with_sales(demo: Any) -> None:
    db = demo.service.db
    for amount in ("25", "40"):
        assert demo.buy(amount=amount).status_code == 201
    with db.read() as conn:
        before = conn.execute(sa.select(tokens).order_by(tokens.c.id)).all()
    assert before and _token_fks(db.engine) == {"transactions"}
    assert {fk.column.table.name for fk in tokens.foreign_keys} == {"transactions"}

    with db.begin() as conn:  # down: the checks come back and hold for the stored rows
        command.downgrade(alembic_config(conn), "0006_web")
    assert _token_fks(db.engine) == {"transactions", "meters", "vending_keys"}
    with db.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert migrate(db) == "0025_list_sorts"
    assert _token_fks(db.engine) == {"transactions"}
    with db.read() as conn:
        after = conn.execute(sa.select(tokens).order_by(tokens.c.id)).all()
    assert after == before
    assert demo.buy(amount="10").status_code == 201  # and the service works on it


def test_0008_fillfactor_on_postgresql(demo: Any) -> None:
    """Room for in-place (HOT) updates of meters and campaign items on PostgreSQL."""
    db = demo.service.db
    if db.is_sqlite:
        pytest.skip("SQLite has no fill factor; the migration leaves it alone")
    with db.read() as conn:
        options = dict(conn.execute(sa.text(
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
            "WHERE relname IN ('meters', 'campaign_items')")).all())
    assert options == {"meters": "fillfactor=80", "campaign_items": "fillfactor=70"}


def test_0009_username_keys_down_and_up(demo: Any) -> None:
    """The keys are computed for stored names on the way up; look-alike names stop it."""
    from sts.vending.storage.tables import operators

    db = demo.service.db
    with db.read() as conn:
        before = dict(conn.execute(sa.select(operators.c.username,
                                             operators.c.username_key)).all())
    assert before and all(key == name.casefold() for name, key in before.items())
    with db.begin() as conn:
        command.downgrade(alembic_config(conn), "0008_fillfactor")
    assert "username_key" not in {c["name"] for c in sa.inspect(db.engine).get_columns(
        "operators")}
    with db.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with db.read() as conn:
        assert dict(conn.execute(sa.select(operators.c.username, operators.c.username_key))
                    .all()) == before
    with db.begin() as conn:
        command.downgrade(alembic_config(conn), "0008_fillfactor")
    with db.begin() as conn:  # a look-alike made before the keys existed
        conn.execute(sa.text("INSERT INTO operators (username, name, role, active) "
                             "VALUES ('Demo-Admin', '', 'admin', true)"))
    with pytest.raises(RuntimeError, match="Demo-Admin"), db.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def test_0019_list_search_down_and_up(demo: Any) -> None:
    """The list indexes go and come back; on PostgreSQL the searches get trigram indexes."""
    db = demo.service.db

    def indexes() -> set[str]:
        return {ix["name"] for table in ("meters", "customers", "audit_log")
                for ix in sa.inspect(db.engine).get_indexes(table) if ix["name"]}

    made = indexes()
    assert {"ix_meters_customer_id", "ix_audit_log_subject", "ix_customers_name"} <= made
    if not db.is_sqlite:
        assert {"ix_meters_pan_trgm", "ix_customers_name_trgm", "ix_meters_pan_covering"} <= made
    with db.begin() as conn:
        command.downgrade(alembic_config(conn), "0018_request_ids")
    left = indexes()
    gone = made - left
    assert left <= made and {"ix_meters_customer_id", "ix_audit_log_subject"} <= gone
    assert not any("trgm" in ix for ix in left)
    with db.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert indexes() == made
