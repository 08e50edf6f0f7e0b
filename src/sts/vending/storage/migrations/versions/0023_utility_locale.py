"""Money and language as people read them: a utility's locale (`en_ZA`, `fr_CI`: how its
money is written and its pages' default language) and an operator's own language.  Both
nullable: an older server ignores them, and a utility without a locale gets its currency's
usual one.

Revision ID: 0023_utility_locale
Revises: 0022_tariff_history
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023_utility_locale'
down_revision = '0022_tariff_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('utilities', sa.Column('locale', sa.String(length=20), nullable=True))
    op.add_column('operators', sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place (no table copy, so no foreign key trips)
    op.drop_column('operators', 'language')
    op.drop_column('utilities', 'locale')
