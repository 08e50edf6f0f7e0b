"""The request id beside each audit entry (nullable: older entries and older servers write
none; not part of the entry's hash).

Revision ID: 0018_request_ids
Revises: 0017_client_certs
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018_request_ids'
down_revision = '0017_client_certs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('request_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_log') as batch:
        batch.drop_column('request_id')
