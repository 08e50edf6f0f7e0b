"""Hardening: each utility has an IANA time zone (TIDs count its local minutes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('utilities', sa.Column('time_zone', sa.String(length=64), nullable=False,
                                         server_default='UTC'))


def downgrade() -> None:
    with op.batch_alter_table('utilities') as batch:
        batch.drop_column('time_zone')
