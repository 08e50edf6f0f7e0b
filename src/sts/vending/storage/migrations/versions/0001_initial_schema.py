"""Initial schema: registry, keys, transactions, tokens, audit chain, rate counters, campaigns.

Revision ID: 0001
Revises: (none)
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import Money

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_no', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('debt_balance', Money(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('account_no', name=op.f('uq_customers_account_no'))
    )
    op.create_table('rate_counters',
    sa.Column('bucket', sa.String(length=80), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'window_start', name=op.f('pk_rate_counters'))
    )
    op.create_table('tariffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('ti', sa.Integer(), nullable=True),
    sa.Column('blocks', sa.Text(), nullable=False),
    sa.Column('vat_rate', Money(), nullable=False),
    sa.Column('fixed_monthly', Money(), nullable=False),
    sa.Column('debt_share', Money(), nullable=False),
    sa.Column('free_units', Money(), nullable=False),
    sa.Column('min_amount', Money(), nullable=False),
    sa.Column('max_amount', Money(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariffs')),
    sa.UniqueConstraint('name', name=op.f('uq_tariffs_name'))
    )
    op.create_table('utilities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('vat_reg_num', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_utilities')),
    sa.UniqueConstraint('name', name=op.f('uq_utilities_name'))
    )
    op.create_table('vendors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('float_balance', Money(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vendors')),
    sa.UniqueConstraint('name', name=op.f('uq_vendors_name'))
    )
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('vendor_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_operators_vendor_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('username', name=op.f('uq_operators_username'))
    )
    op.create_table('supply_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sgc', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('utility_id', sa.Integer(), nullable=False),
    sa.Column('current_key_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['utility_id'], ['utilities.id'], name=op.f('fk_supply_groups_utility_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supply_groups')),
    sa.UniqueConstraint('sgc', name=op.f('uq_supply_groups_sgc'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('vendor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_api_keys_operator_id')),
    sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_api_keys_vendor_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('vending_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sgc_id', sa.Integer(), nullable=False),
    sa.Column('krn', sa.Integer(), nullable=False),
    sa.Column('key_type', sa.String(length=4), nullable=False),
    sa.Column('dkga', sa.Integer(), nullable=False),
    sa.Column('ea', sa.Integer(), nullable=False),
    sa.Column('base_date', sa.Integer(), nullable=False),
    sa.Column('table_set', sa.String(length=20), nullable=True),
    sa.Column('ken', sa.Integer(), nullable=False),
    sa.Column('issued_until', sa.DateTime(), nullable=True),
    sa.Column('kct_until', sa.DateTime(), nullable=True),
    sa.Column('credit_limit', Money(), nullable=True),
    sa.Column('credit_used', Money(), nullable=False),
    sa.Column('module', sa.String(length=20), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('origin', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['sgc_id'], ['supply_groups.id'], name=op.f('fk_vending_keys_sgc_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vending_keys')),
    sa.UniqueConstraint('sgc_id', 'krn', name='uq_vending_keys_sgc_krn')
    )
    op.create_table('vendor_sgcs',
    sa.Column('vendor_id', sa.Integer(), nullable=False),
    sa.Column('sgc_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sgc_id'], ['supply_groups.id'], name=op.f('fk_vendor_sgcs_sgc_id')),
    sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_vendor_sgcs_vendor_id')),
    sa.PrimaryKeyConstraint('vendor_id', 'sgc_id', name=op.f('pk_vendor_sgcs'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('sgc_id', sa.Integer(), nullable=False),
    sa.Column('from_key_id', sa.Integer(), nullable=True),
    sa.Column('to_key_id', sa.Integer(), nullable=False),
    sa.Column('ro', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['from_key_id'], ['vending_keys.id'], name=op.f('fk_campaigns_from_key_id')),
    sa.ForeignKeyConstraint(['sgc_id'], ['supply_groups.id'], name=op.f('fk_campaigns_sgc_id')),
    sa.ForeignKeyConstraint(['to_key_id'], ['vending_keys.id'], name=op.f('fk_campaigns_to_key_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('meters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pan', sa.String(length=18), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('sgc_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('ti', sa.Integer(), nullable=False),
    sa.Column('kt', sa.Integer(), nullable=False),
    sa.Column('ken', sa.Integer(), nullable=False),
    sa.Column('mfr_code', sa.String(length=4), nullable=False),
    sa.Column('service', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=False),
    sa.Column('last_tid', sa.Integer(), nullable=False),
    sa.Column('tid_epoch', sa.Integer(), nullable=False),
    sa.Column('max_epoch', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_meters_customer_id')),
    sa.ForeignKeyConstraint(['key_id'], ['vending_keys.id'], name=op.f('fk_meters_key_id')),
    sa.ForeignKeyConstraint(['sgc_id'], ['supply_groups.id'], name=op.f('fk_meters_sgc_id')),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_meters_tariff_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters')),
    sa.UniqueConstraint('pan', name=op.f('uq_meters_pan'))
    )
    op.create_table('meter_months',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('units', Money(), nullable=False),
    sa.Column('fixed_paid', Money(), nullable=False),
    sa.Column('free_units', Money(), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_meter_months_meter_id')),
    sa.PrimaryKeyConstraint('meter_id', 'month', name=op.f('pk_meter_months'))
    )
    op.create_table('transactions',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('vendor_id', sa.Integer(), nullable=True),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('vat', Money(), nullable=False),
    sa.Column('charges', Money(), nullable=False),
    sa.Column('debt', Money(), nullable=False),
    sa.Column('units', Money(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reverses', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('prev_key', sa.Text(), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_transactions_api_key_id')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_transactions_meter_id')),
    sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_transactions_vendor_id')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_transactions')),
    sa.UniqueConstraint('request_id', name=op.f('uq_transactions_request_id'))
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_meter_seq', ['meter_id', 'seq'], unique=False)

    op.create_table('campaign_items',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('txn_seq', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_items_campaign_id')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_campaign_items_meter_id')),
    sa.ForeignKeyConstraint(['txn_seq'], ['transactions.seq'], name=op.f('fk_campaign_items_txn_seq')),
    sa.PrimaryKeyConstraint('campaign_id', 'meter_id', name=op.f('pk_campaign_items'))
    )
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('txn_seq', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=20), nullable=False),
    sa.Column('token_class', sa.Integer(), nullable=False),
    sa.Column('subclass', sa.Integer(), nullable=False),
    sa.Column('tid', sa.Integer(), nullable=True),
    sa.Column('tid_epoch', sa.Integer(), nullable=False),
    sa.Column('units', Money(), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('description', sa.String(length=120), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('kt', sa.Integer(), nullable=False),
    sa.Column('ti', sa.Integer(), nullable=False),
    sa.Column('ken', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['key_id'], ['vending_keys.id'], name=op.f('fk_tokens_key_id')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_tokens_meter_id')),
    sa.ForeignKeyConstraint(['txn_seq'], ['transactions.seq'], name=op.f('fk_tokens_txn_seq')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    sa.UniqueConstraint('meter_id', 'tid_epoch', 'tid', name='uq_tokens_meter_epoch_tid')
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index('ix_tokens_meter_token', ['meter_id', 'token'], unique=False)
    audit_head = sa.table('audit_head', sa.column('id', sa.Integer), sa.column('seq', sa.Integer),
                          sa.column('hash', sa.String))
    op.bulk_insert(audit_head, [{'id': 1, 'seq': 0, 'hash': '0' * 64}])


def downgrade() -> None:

    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_tokens_meter_token')

    op.drop_table('tokens')
    op.drop_table('campaign_items')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_meter_seq')

    op.drop_table('transactions')
    op.drop_table('meter_months')
    op.drop_table('meters')
    op.drop_table('campaigns')
    op.drop_table('vendor_sgcs')
    op.drop_table('vending_keys')
    op.drop_table('api_keys')
    op.drop_table('supply_groups')
    op.drop_table('operators')
    op.drop_table('vendors')
    op.drop_table('utilities')
    op.drop_table('tariffs')
    op.drop_table('rate_counters')
    op.drop_table('customers')
    op.drop_table('audit_log')
    op.drop_table('audit_head')

