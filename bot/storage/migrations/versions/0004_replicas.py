"""Replicas: leases, channel state, CRM idempotency keys, card claims; audit events chained after they are written

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:11:50.674730

Audit events get ``seq`` (their place in the chain) and ``sig`` (their
content signed when written); ``prev_hash`` and ``hash`` may be empty until
the chainer links the event. Events written before this revision are
already linked in id order, so their ``seq`` is their id.

The append-only triggers now let exactly one change through: the chainer
linking an event that has no ``seq`` yet, leaving everything it says as it
was (and the hashes of an event that already had them). SQLite's trigger
is made again because the batch migration recreates the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
        AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor AND NEW.action = OLD.action
        AND NEW.subject = OLD.subject AND NEW.details::text = OLD.details::text
        AND NEW.key_id IS NOT DISTINCT FROM OLD.key_id AND NEW.sig IS NOT DISTINCT FROM OLD.sig
        AND (OLD.hash IS NULL OR (NEW.hash = OLD.hash AND NEW.prev_hash IS NOT DISTINCT FROM OLD.prev_hash))
    THEN
        RETURN NEW;  -- the chainer links the event, once
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$
"""
_PG_OLD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    OLD.seq IS NULL AND NEW.seq IS NOT NULL
    AND NEW.id IS OLD.id AND NEW.at IS OLD.at AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action
    AND NEW.subject IS OLD.subject AND NEW.details IS OLD.details
    AND NEW.key_id IS OLD.key_id AND NEW.sig IS OLD.sig
    AND (OLD.hash IS NULL OR (NEW.hash IS OLD.hash AND NEW.prev_hash IS OLD.prev_hash))
)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END
"""
_SQLITE_OLD_TRIGGER = """
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END
"""


def upgrade() -> None:
    op.create_table('channel_state',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('channel', 'kind', 'key', name=op.f('pk_channel_state'))
    )
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_state_expires_at'), ['expires_at'], unique=False)

    op.create_table('crm_done_keys',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=256), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'idempotency_key', name=op.f('pk_crm_done_keys'))
    )
    with op.batch_alter_table('crm_done_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_done_keys_done_at'), ['done_at'], unique=False)

    op.create_table('leases',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('holder', sa.String(length=160), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leases_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('request_cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('message_ref', existing_type=sa.VARCHAR(length=128), nullable=True)

    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('sig', sa.String(length=64), nullable=True))
        batch_op.alter_column('prev_hash', existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_seq'), ['seq'])
    if dialect == 'postgresql':
        # The new function lets this one change through: old events get their place, nothing else moves.
        op.execute(_PG_FUNCTION)
        op.execute('UPDATE audit_events SET seq = id')
    else:
        op.execute('DROP TRIGGER IF EXISTS audit_events_no_update')  # gone with the recreated table already
        op.execute('UPDATE audit_events SET seq = id')
        if dialect == 'sqlite':
            op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        op.execute('DROP TRIGGER IF EXISTS audit_events_no_update')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_events_seq'), type_='unique')
        # Fails while events wait for the chainer: link them (run the bot once more) before going back.
        batch_op.alter_column('hash', existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.drop_column('sig')
        batch_op.drop_column('seq')
    if dialect == 'postgresql':
        op.execute(_PG_OLD_FUNCTION)
    elif dialect == 'sqlite':
        op.execute(_SQLITE_OLD_TRIGGER)

    op.execute('DELETE FROM request_cards WHERE message_ref IS NULL')  # claimed, never posted
    with op.batch_alter_table('request_cards', schema=None) as batch_op:
        batch_op.alter_column('message_ref', existing_type=sa.VARCHAR(length=128), nullable=False)
        batch_op.drop_column('claimed_until')

    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leases_expires_at'))
    op.drop_table('leases')
    with op.batch_alter_table('crm_done_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_done_keys_done_at'))
    op.drop_table('crm_done_keys')
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_state_expires_at'))
    op.drop_table('channel_state')
