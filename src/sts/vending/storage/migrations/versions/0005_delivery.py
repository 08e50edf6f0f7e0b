"""Token delivery: delivery jobs and attempts (transactional outbox), meters.ami.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0003_electrum'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('meters') as batch:
        batch.add_column(sa.Column('ami', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        'deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('txn_seq', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=False),
        sa.Column('meter_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('meter_result', sa.Text(), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('resend_of', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['txn_seq'], ['transactions.seq'],
                                name=op.f('fk_deliveries_txn_seq')),
        sa.ForeignKeyConstraint(['meter_id'], ['meters.id'],
                                name=op.f('fk_deliveries_meter_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    )
    op.create_index('ix_deliveries_due', 'deliveries', ['status', 'next_at'])
    op.create_index('ix_deliveries_meter', 'deliveries', ['meter_id', 'channel', 'status'])
    op.create_index('ix_deliveries_request', 'deliveries', ['request_id'])
    op.create_table(
        'delivery_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('detail', sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'],
                                name=op.f('fk_delivery_attempts_delivery_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts')),
    )
    op.create_index('ix_delivery_attempts_delivery', 'delivery_attempts', ['delivery_id'])


def downgrade() -> None:
    op.drop_table('delivery_attempts')
    op.drop_table('deliveries')
    with op.batch_alter_table('meters') as batch:
        batch.drop_column('ami')
