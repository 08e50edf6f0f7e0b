"""Switch interface (Electrum PSI v3): Basic credentials, client message ids, the request
journal, sale advice states, fault reports.

Revision ID: 0003_electrum
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_electrum'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'basic_credentials',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('secret_hash', sa.String(length=200), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=False),
        sa.Column('institution_id', sa.String(length=64), nullable=True),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                                name=op.f('fk_basic_credentials_api_key_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_basic_credentials')),
        sa.UniqueConstraint('username', name=op.f('uq_basic_credentials_username')),
    )
    op.create_table(
        'client_messages',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('operation', sa.String(length=40), nullable=False),
        sa.Column('ref_id', sa.String(length=64), nullable=True),
        sa.Column('institution_id', sa.String(length=64), nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=True),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('request', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('http_status', sa.Integer(), nullable=True),
        sa.Column('error_type', sa.String(length=40), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.Column('repeats', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_client_messages')),
    )
    op.create_index('ix_client_messages_ref_id', 'client_messages', ['ref_id'])
    op.create_table(
        'message_journal',
        sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('operation', sa.String(length=40), nullable=False),
        sa.Column('message_id', sa.String(length=64), nullable=False),
        sa.Column('ref_id', sa.String(length=64), nullable=True),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('institution_id', sa.String(length=64), nullable=False),
        sa.Column('http_status', sa.Integer(), nullable=False),
        sa.Column('error_type', sa.String(length=40), nullable=True),
        sa.Column('detail', sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_message_journal')),
    )
    op.create_index('ix_message_journal_message_id', 'message_journal', ['message_id'])
    op.create_table(
        'sale_advices',
        sa.Column('purchase_id', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('confirmation_id', sa.String(length=64), nullable=True),
        sa.Column('reversal_id', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('purchase_id', name=op.f('pk_sale_advices')),
    )
    op.create_table(
        'fault_reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=False),
        sa.Column('reference', sa.String(length=20), nullable=False),
        sa.Column('meter_id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=True),
        sa.Column('fault_type', sa.String(length=40), nullable=False),
        sa.Column('description', sa.String(length=160), nullable=False),
        sa.Column('contact_number', sa.String(length=20), nullable=False),
        sa.Column('customer', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['meter_id'], ['meters.id'],
                                name=op.f('fk_fault_reports_meter_id')),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_fault_reports_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fault_reports')),
        sa.UniqueConstraint('request_id', name=op.f('uq_fault_reports_request_id')),
        sa.UniqueConstraint('reference', name=op.f('uq_fault_reports_reference')),
    )


def downgrade() -> None:
    op.drop_table('fault_reports')
    op.drop_table('sale_advices')
    op.drop_index('ix_message_journal_message_id', table_name='message_journal')
    op.drop_table('message_journal')
    op.drop_index('ix_client_messages_ref_id', table_name='client_messages')
    op.drop_table('client_messages')
    op.drop_table('basic_credentials')
