"""XMLVend face: vending client systems, their operators, and the exchanges keyed by msgID.

Revision ID: 0010_xmlvend
Revises: 0009_username_keys
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_xmlvend'
down_revision = '0009_username_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'vend_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('profile', sa.String(length=10), nullable=False),
        sa.Column('cert_sha256', sa.String(length=64), nullable=True),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_vend_clients_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vend_clients')),
        sa.UniqueConstraint('client_id', name=op.f('uq_vend_clients_client_id')),
    )
    op.create_table(
        'vend_client_operators',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_row', sa.Integer(), nullable=False),
        sa.Column('op_name', sa.String(length=40), nullable=False),
        sa.Column('secret_hash', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=12), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('disabled_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['client_row'], ['vend_clients.id'],
                                name=op.f('fk_vend_client_operators_client_row')),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                                name=op.f('fk_vend_client_operators_api_key_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vend_client_operators')),
        sa.UniqueConstraint('client_row', 'op_name', name='uq_vend_client_operators_client_op'),
    )
    op.create_table(
        'client_exchanges',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('client_row', sa.Integer(), nullable=False),
        sa.Column('msg_date_time', sa.String(length=40), nullable=False),
        sa.Column('msg_unique', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('financial', sa.Boolean(), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('request', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('resp_type', sa.String(length=60), nullable=True),
        sa.Column('payload', sa.Text(), nullable=True),
        sa.Column('fault', sa.Boolean(), nullable=False),
        sa.Column('deliveries', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['client_row'], ['vend_clients.id'],
                                name=op.f('fk_client_exchanges_client_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_client_exchanges')),
        sa.UniqueConstraint('client_row', 'msg_date_time', 'msg_unique',
                            name='uq_client_exchanges_msgid'),
    )
    op.create_index('ix_client_exchanges_request_id', 'client_exchanges', ['request_id'])


def downgrade() -> None:
    op.drop_index('ix_client_exchanges_request_id', table_name='client_exchanges')
    op.drop_table('client_exchanges')
    op.drop_table('vend_client_operators')
    op.drop_table('vend_clients')
