"""Tariff history and four-eyes float top-ups: `tariff_versions` (every version of a tariff
with the time it takes effect; each existing tariff becomes its version 1), `tariffs.pending_from`
(a scheduled version not yet in the row), `float_requests` (top-ups waiting for a second
approver), `utilities.top_up_approval_above` (the amount above which they wait) and
`sim_meter_states` (each operator's own copy of a simulated meter).

Additive: an older server ignores the new table and columns.

Revision ID: 0022_tariff_history
Revises: 0021_selfservice
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

from sts.vending.storage.tables import Money

revision = '0022_tariff_history'
down_revision = '0021_selfservice'
branch_labels = None
depends_on = None

TERMS = ('description', 'blocks', 'vat_rate', 'fixed_monthly', 'debt_share', 'free_units',
         'min_amount', 'max_amount')


def upgrade() -> None:
    op.add_column('utilities', sa.Column('top_up_approval_above', Money(), nullable=True))
    op.add_column('tariffs', sa.Column('pending_from', sa.DateTime(), nullable=True))
    op.create_table(
        'tariff_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tariff_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('effective_from', sa.DateTime(), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('blocks', sa.Text(), nullable=False),
        sa.Column('vat_rate', Money(), nullable=False),
        sa.Column('fixed_monthly', Money(), nullable=False),
        sa.Column('debt_share', Money(), nullable=False),
        sa.Column('free_units', Money(), nullable=False),
        sa.Column('min_amount', Money(), nullable=False),
        sa.Column('max_amount', Money(), nullable=True),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'],
                                name=op.f('fk_tariff_versions_tariff_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tariff_versions')),
        sa.UniqueConstraint('tariff_id', 'version', name='uq_tariff_versions_version'),
    )
    op.create_index('ix_tariff_versions_effective', 'tariff_versions',
                    ['tariff_id', 'effective_from'])
    op.create_table(
        'float_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sa.Integer(), nullable=False),
        sa.Column('amount', Money(), nullable=False),
        sa.Column('reference', sa.String(length=80), nullable=False),
        sa.Column('requested_by', sa.String(length=120), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('decided_by', sa.String(length=120), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'],
                                name=op.f('fk_float_requests_vendor_id')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_float_requests')),
    )
    op.create_index('ix_float_requests_state', 'float_requests', ['state', 'id'])
    op.create_table(
        'sim_meter_states',
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('pan', sa.String(length=18), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_sim_meter_states_operator_id')),
        sa.PrimaryKeyConstraint('operator_id', 'pan', name=op.f('pk_sim_meter_states')),
    )
    # every existing tariff: its current terms as version 1, in force since ever
    conn = op.get_bind()
    tariffs = sa.table('tariffs', sa.column('id', sa.Integer),
                       *(sa.column(n) for n in TERMS))
    versions = sa.table('tariff_versions', sa.column('tariff_id', sa.Integer),
                        sa.column('version', sa.Integer), sa.column('effective_from'),
                        sa.column('actor'), sa.column('created_at'),
                        *(sa.column(n) for n in TERMS))
    now = datetime.utcnow().replace(microsecond=0)
    for row in conn.execute(sa.select(tariffs)).mappings().all():
        conn.execute(sa.insert(versions).values(
            tariff_id=row['id'], version=1, effective_from=datetime(2000, 1, 1),
            actor='migration 0022', created_at=now, **{n: row[n] for n in TERMS}))


def downgrade() -> None:
    op.drop_table('sim_meter_states')
    op.drop_index('ix_float_requests_state', table_name='float_requests')
    op.drop_table('float_requests')
    op.drop_index('ix_tariff_versions_effective', table_name='tariff_versions')
    op.drop_table('tariff_versions')
    op.drop_column('tariffs', 'pending_from')
    op.drop_column('utilities', 'top_up_approval_above')
