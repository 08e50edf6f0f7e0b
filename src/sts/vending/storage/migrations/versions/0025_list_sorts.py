"""An index for the reversals list's sort by amount (`usecases.lists_office.SALES`): the
page of sales in amount order is read from the index, never by sorting every sale.  An index
only: an older server keeps running beside it.

Revision ID: 0025_list_sorts
Revises: 0024_sale_shift
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = '0025_list_sorts'
down_revision = '0024_sale_shift'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_transactions_amount_seq', 'transactions', ['amount', 'seq'])


def downgrade() -> None:
    op.drop_index('ix_transactions_amount_seq', table_name='transactions')
