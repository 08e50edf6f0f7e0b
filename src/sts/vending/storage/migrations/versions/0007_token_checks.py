"""tokens: drop the foreign key checks on meter_id and key_id (implied by txn_seq).

A token row is written only with its transaction, in the same statement batch, from the same
meter and key rows; `tokens.txn_seq` keeps its foreign key, and meters and vending keys are
never deleted.  The two checks cost the database a parent-row lookup and lock per token (the
vending key's row is shared by every token of a supply group, so concurrent campaign workers
queued on it): about a fifth of PostgreSQL's CPU in a key change campaign.

Revision ID: 0007_token_checks
Revises: 0006_web
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = '0007_token_checks'
down_revision = '0006_web'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.drop_constraint('fk_tokens_meter_id', type_='foreignkey')
        batch.drop_constraint('fk_tokens_key_id', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.create_foreign_key('fk_tokens_meter_id', 'meters', ['meter_id'], ['id'])
        batch.create_foreign_key('fk_tokens_key_id', 'vending_keys', ['key_id'], ['id'])
