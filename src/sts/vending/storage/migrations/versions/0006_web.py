"""Web application: operator passwords, sessions, float movements, simulator meters.

Revision ID: 0006_web
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import Money

revision = '0006_web'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'operator_credentials',
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('failed_count', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('last_login_at', sa.DateTime(), nullable=True),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_operator_credentials_operator_id')),
        sa.PrimaryKeyConstraint('operator_id', name=op.f('pk_operator_credentials')),
    )
    op.create_table(
        'web_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_web_sessions_operator_id')),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions')),
    )
    op.create_index('ix_web_sessions_operator_id', 'web_sessions', ['operator_id'])
    op.create_table(
        'float_movements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('amount', Money(), nullable=False),
        sa.Column('balance_after', Money(), nullable=False),
        sa.Column('reference', sa.String(length=80), nullable=False),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_float_movements_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_float_movements')),
    )
    op.create_index('ix_float_movements_vendor_id', 'float_movements', ['vendor_id', 'id'])
    op.create_table(
        'sim_meters',
        sa.Column('pan', sa.String(length=18), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('pan', name=op.f('pk_sim_meters')),
    )


def downgrade() -> None:
    op.drop_table('sim_meters')
    op.drop_index('ix_float_movements_vendor_id', table_name='float_movements')
    op.drop_table('float_movements')
    op.drop_index('ix_web_sessions_operator_id', table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_table('operator_credentials')
