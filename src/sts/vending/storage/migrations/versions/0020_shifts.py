"""Counter: cashiers' shifts, the utility's amount presets, and the tender of each sale.

Additive: two new tables, a nullable column and two indexes of transactions (a cashier's
sales by key and time; reversals by the sale they reverse), so an older server keeps running.

Revision ID: 0020_shifts
Revises: 0019_list_search
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import Money

revision = '0020_shifts'
down_revision = '0019_list_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shifts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('opening_cash', Money(), nullable=False),
        sa.Column('opened_by', sa.String(length=10), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('counted_cash', Money(), nullable=True),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_shifts_operator_id')),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_shifts_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shifts')),
    )
    op.create_index('ix_shifts_vendor_id', 'shifts', ['vendor_id', 'opened_at'])
    op.create_index('ix_shifts_open_operator', 'shifts', ['operator_id'], unique=True,
                    sqlite_where=sa.text('closed_at IS NULL'),
                    postgresql_where=sa.text('closed_at IS NULL'))
    op.create_table(
        'counter_settings',
        sa.Column('utility_id', sa.Integer(), nullable=False),
        sa.Column('amount_presets', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(['utility_id'], ['utilities.id'],
                                name=op.f('fk_counter_settings_utility_id')),
        sa.PrimaryKeyConstraint('utility_id', name=op.f('pk_counter_settings')),
    )
    # ADD COLUMN on both backends (no table copy on SQLite)
    op.add_column('transactions', sa.Column('tender', sa.String(length=8), nullable=True))
    op.create_index('ix_transactions_api_key_id', 'transactions', ['api_key_id', 'created_at'])
    op.create_index('ix_transactions_reverses', 'transactions', ['reverses'],
                    sqlite_where=sa.text('reverses IS NOT NULL'),
                    postgresql_where=sa.text('reverses IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_transactions_reverses', table_name='transactions')
    op.drop_index('ix_transactions_api_key_id', table_name='transactions')
    # DROP COLUMN on both backends (SQLite >= 3.35): a batch copy of transactions would trip
    # the foreign keys that point at it
    op.drop_column('transactions', 'tender')
    op.drop_table('counter_settings')
    op.drop_index('ix_shifts_open_operator', table_name='shifts')
    op.drop_index('ix_shifts_vendor_id', table_name='shifts')
    op.drop_table('shifts')
