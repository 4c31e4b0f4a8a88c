"""Audit events name the key that signed them; the database refuses to change them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:30:00.000000

``key_id`` is NULL for the events written before this revision: they keep
their unkeyed hashes and are checked that way.

PostgreSQL refuses UPDATE and DELETE of audit rows with a row trigger, for
every role that is not allowed to drop it; TRUNCATE (which the demo uses to
start over, and which needs its own privilege) is not a row change and is
not refused. SQLite refuses UPDATE only: anyone who can write the file can
drop a trigger there, so it guards against the bot's own mistakes, and the
demo and ``demo clear`` still empty the table with DELETE. Deleted events
are caught by the chain and the anchor on both.

A later batch migration that recreates ``audit_events`` on SQLite drops
its trigger: create it again there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END
"""


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == 'sqlite':
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events')
        op.execute('DROP FUNCTION IF EXISTS audit_events_append_only()')
    elif dialect == 'sqlite':
        op.execute('DROP TRIGGER IF EXISTS audit_events_no_update')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('key_id')
