"""Lock alerts: who opted out, how far the CRM's lock events were read, maintenance told of, incidents found

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:21:32.682891
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_cursors")),
    )
    op.create_table(
        "alert_opt_outs",
        sa.Column("crm_username", sa.String(length=128), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("crm_username", name=op.f("pk_alert_opt_outs")),
    )
    op.create_table(
        "detected_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_minutes", sa.Double(), nullable=False),
        sa.Column("locks", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Double(), nullable=False),
        sa.Column("by_reason", sa.JSON(), nullable=False),
        sa.Column("first_people", sa.JSON(), nullable=False),
        sa.Column("told_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detected_incidents")),
    )
    with op.batch_alter_table("detected_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_detected_incidents_last_seen_at"), ["last_seen_at"], unique=False)

    op.create_table(
        "maintenance_notices",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("told_ahead_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("told_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_maintenance_notices")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_notices")
    with op.batch_alter_table("detected_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_detected_incidents_last_seen_at"))
    op.drop_table("detected_incidents")
    op.drop_table("alert_opt_outs")
    op.drop_table("alert_cursors")
