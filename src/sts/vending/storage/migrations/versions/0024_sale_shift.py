"""A counter sale names the shift it was made in (`transactions.shift_id`): the cash-up counts
a sale in its shift by that id, exactly, instead of by the second it was made in (two shifts
of one cashier that touch in the same second can then never both claim it).  Nullable, no
foreign key check on the hot sale insert (as `tokens`): sales made before this revision, and
sales by machines (no operator), keep NULL and the time rule.  A partial index: only counter
sales add to it.

Revision ID: 0024_sale_shift
Revises: 0023_utility_locale
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024_sale_shift'
down_revision = '0023_utility_locale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('transactions', sa.Column('shift_id', sa.Integer(), nullable=True))
    op.create_index('ix_transactions_shift_id', 'transactions', ['shift_id'],
                    sqlite_where=sa.text('shift_id IS NOT NULL'),
                    postgresql_where=sa.text('shift_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_transactions_shift_id', table_name='transactions')
    # SQLite >= 3.35 drops a column in place (no table copy, so no foreign key trips)
    op.drop_column('transactions', 'shift_id')
