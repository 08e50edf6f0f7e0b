"""Client certificates for Electrum credentials: a Basic credential may be bound to the SHA-256
of the TLS client certificate it must present (and a request carrying that certificate and no
Basic header is that credential).  Additive: a nullable column and an index.

Revision ID: 0017_client_certs
Revises: 0011_payments
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017_client_certs'
down_revision = '0011_payments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('basic_credentials',
                  sa.Column('cert_sha256', sa.String(length=64), nullable=True))
    op.create_index('ix_basic_credentials_cert_sha256', 'basic_credentials', ['cert_sha256'])


def downgrade() -> None:
    op.drop_index('ix_basic_credentials_cert_sha256', table_name='basic_credentials')
    with op.batch_alter_table('basic_credentials') as batch:
        batch.drop_column('cert_sha256')
