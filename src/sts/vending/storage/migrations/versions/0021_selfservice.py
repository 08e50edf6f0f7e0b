"""The self-service page: one-time codes for "my tokens" (`access_codes`), and the page's
ticket on a payment prompt (`payment_requests.ticket_hash`, nullable: additive).

Revision ID: 0021_selfservice
Revises: 0020_shifts
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import TS

revision = '0021_selfservice'
down_revision = '0020_shifts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_requests') as batch:
        batch.add_column(sa.Column('ticket_hash', sa.String(length=64), nullable=True))
    op.create_index('ix_payment_requests_ticket', 'payment_requests', ['ticket_hash'])
    op.create_table(
        'access_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('meter_pan', sa.String(length=18), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('salt', sa.String(length=32), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('expires_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_access_codes')),
    )
    op.create_index('ix_access_codes_meter', 'access_codes', ['meter_pan', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_access_codes_meter', table_name='access_codes')
    op.drop_table('access_codes')
    op.drop_index('ix_payment_requests_ticket', table_name='payment_requests')
    with op.batch_alter_table('payment_requests') as batch:
        batch.drop_column('ticket_hash')
