"""PostgreSQL: leave room in the pages of meters and campaign_items for in-place updates.

Every sale and key change updates its meter's row, and a campaign updates each item once;
none of those updates touches an indexed column, so with free space on the page PostgreSQL
rewrites the row in place (a HOT update) instead of adding an entry to every index.  Measured
on a 200,000-meter campaign: the database's CPU per meter 129 -> 97 us.  Applies to pages
written from now on (imports, new campaigns); `VACUUM FULL meters` repacks an existing table.
SQLite has no such setting: nothing to do there.

Revision ID: 0008_fillfactor
Revises: 0007_token_checks
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = '0008_fillfactor'
down_revision = '0007_token_checks'
branch_labels = None
depends_on = None

FILL = {'meters': 80, 'campaign_items': 70}


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, percent in FILL.items():
        op.execute(f'ALTER TABLE {table} SET (fillfactor = {percent})')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in FILL:
        op.execute(f'ALTER TABLE {table} RESET (fillfactor)')
