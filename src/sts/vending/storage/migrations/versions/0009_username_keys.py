"""operators, basic_credentials: a unique `username_key` (the name NFKC-normalised and
case-folded), so look-alike names (`Demo-Admin` beside `demo-admin`) cannot be created and
sign-in finds a name however it is typed.

The key is computed here, in Python (neither database has NFKC), with the same rule as
`sts.vending.access.usernames.username_key`, copied so this revision never changes.  Two
stored names with the same key stop the upgrade with both names: rename one first.

Revision ID: 0009_username_keys
Revises: 0008_fillfactor
Create Date: 2026-12-06
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = '0009_username_keys'
down_revision = '0008_fillfactor'
branch_labels = None
depends_on = None

TABLES = {'operators': 60, 'basic_credentials': 64}


def _key(name: str) -> str:
    return unicodedata.normalize('NFKC', name).casefold()


def upgrade() -> None:
    conn = op.get_bind()
    for table, size in TABLES.items():
        op.add_column(table, sa.Column('username_key', sa.String(size), nullable=True))
        t = sa.table(table, sa.column('id', sa.Integer), sa.column('username', sa.String),
                     sa.column('username_key', sa.String))
        seen: dict[str, str] = {}
        for row in conn.execute(sa.select(t.c.id, t.c.username)).all():
            key = _key(row.username)[:size]
            if key in seen:
                raise RuntimeError(f'{table}: usernames {seen[key]!r} and {row.username!r} '
                                   'differ only in case or form; rename one, then upgrade')
            seen[key] = row.username
            conn.execute(sa.update(t).where(t.c.id == row.id).values(username_key=key))
        op.create_index(f'ux_{table}_username_key', table, ['username_key'], unique=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f'ux_{table}_username_key', table_name=table)
        op.drop_column(table, 'username_key')  # SQLite >= 3.35 drops a column in place
