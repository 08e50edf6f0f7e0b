"""Indexes for the paged, sorted and searched lists (`sts.vending.listing`) and the record
pages: a meter's customer, status order, the audit log by actor / action / record / time,
a vendor's sales.  Indexes only: an older server keeps running beside them.

PostgreSQL also gets trigram indexes (extension pg_trgm) for "contains" searches on the meter
number and the customer's name, address and account, and a covering index on the meter
number so a deep page of the register is an index-only scan.  Where the extension cannot be
created (no contrib package, no rights) the searches fall back to prefix indexes and a scan.
SQLite gets the plain indexes; its LIKE '%...%' scans, which at its sizes is fine.

Revision ID: 0019_list_search
Revises: 0018_request_ids
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = '0019_list_search'
down_revision = '0018_request_ids'
branch_labels = None
depends_on = None

PLAIN = {
    'ix_meters_customer_id': ('meters', ['customer_id']),
    'ix_meters_status_pan': ('meters', ['status', 'pan']),
    'ix_meters_created_at': ('meters', ['created_at', 'id']),
    'ix_customers_name': ('customers', ['name', 'id']),
    'ix_audit_log_actor': ('audit_log', ['actor', 'seq']),
    'ix_audit_log_action': ('audit_log', ['action', 'seq']),
    'ix_audit_log_subject': ('audit_log', ['subject', 'seq']),
    'ix_audit_log_at': ('audit_log', ['at']),
    'ix_transactions_vendor_seq': ('transactions', ['vendor_id', 'seq']),
}
TRIGRAM = {
    'ix_meters_pan_trgm': ('meters', 'pan'),
    'ix_customers_name_trgm': ('customers', 'lower(name)'),
    'ix_customers_address_trgm': ('customers', 'lower(address)'),
    'ix_customers_account_trgm': ('customers', 'lower(account_no)'),
}


def _trigrams_available() -> bool:
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except Exception:  # no contrib package or no rights: prefix indexes instead
        return False
    return True


def upgrade() -> None:
    for name, (table, columns) in PLAIN.items():
        op.create_index(name, table, columns)
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE INDEX ix_meters_pan_covering ON meters (pan) INCLUDE (id, status)')
    if _trigrams_available():
        for name, (table, expr) in TRIGRAM.items():
            op.execute(f'CREATE INDEX {name} ON {table} USING gin ({expr} gin_trgm_ops)')
    else:
        for name, (table, expr) in TRIGRAM.items():
            op.execute(f'CREATE INDEX {name} ON {table} ({expr} text_pattern_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in [*TRIGRAM, 'ix_meters_pan_covering']:
            op.execute(f'DROP INDEX IF EXISTS {name}')
    for name, (table, _) in PLAIN.items():
        op.drop_index(name, table_name=table)
