"""Who issued a link code and who pressed a decision; buttons and exclusions on notifications; verified_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:49:22.757254
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invited_by', sa.String(length=128), nullable=True))

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issuer_username', sa.String(length=128), nullable=True))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('buttons', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('not_for', sa.String(length=256), nullable=True))

    with op.batch_alter_table('unlock_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decided_via', sa.String(length=160), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('unlock_requests', schema=None) as batch_op:
        batch_op.drop_column('decided_via')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('not_for')
        batch_op.drop_column('buttons')

    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.drop_column('issuer_username')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('verified_at')

    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.drop_column('invited_by')

