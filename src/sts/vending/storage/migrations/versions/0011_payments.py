"""Mobile money: payments (one row per provider transaction, unique per provider id) and
payment requests (the prompts we asked the provider to make).

Revision ID: 0011_payments
Revises: 0010_xmlvend
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import Money

revision = '0011_payments'
down_revision = '0010_xmlvend'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('provider_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('meter_pan', sa.String(length=18), nullable=True),
        sa.Column('amount', Money(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('msisdn', sa.String(length=80), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('payer', sa.String(length=120), nullable=False),
        sa.Column('paid_at', sa.DateTime(), nullable=True),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('purchase_id', sa.String(length=64), nullable=True),
        sa.Column('vendor_id', sa.Integer(), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('raw', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_payments_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
        sa.UniqueConstraint('provider', 'provider_id', name='uq_payments_provider_id'),
    )
    op.create_index('ix_payments_state', 'payments', ['state', 'id'])
    op.create_table(
        'payment_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=False),
        sa.Column('merchant_request_id', sa.String(length=64), nullable=False),
        sa.Column('meter_pan', sa.String(length=18), nullable=False),
        sa.Column('amount', Money(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('result_code', sa.String(length=16), nullable=False),
        sa.Column('result_desc', sa.String(length=300), nullable=False),
        sa.Column('provider_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_requests')),
        sa.UniqueConstraint('provider', 'request_id', name='uq_payment_requests_request'),
    )
    op.create_index('ix_payment_requests_phone', 'payment_requests', ['phone', 'id'])


def downgrade() -> None:
    op.drop_index('ix_payment_requests_phone', table_name='payment_requests')
    op.drop_table('payment_requests')
    op.drop_index('ix_payments_state', table_name='payments')
    op.drop_table('payments')
