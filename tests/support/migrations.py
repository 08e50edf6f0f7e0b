"""Alembic driven by hand over a test's own connection, to step a database down and up."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.config import Config


def alembic_config(conn: sa.Connection | None) -> Config:
    """The service's migrations, run on `conn` (None: only to read the scripts)."""
    cfg = Config()
    cfg.set_main_option("script_location", "sts.vending.storage:migrations")
    cfg.attributes["connection"] = conn
    return cfg
