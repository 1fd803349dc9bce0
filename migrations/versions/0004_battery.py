"""battery chain: indexes for reverse trace and the year-wide audits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 03:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("battery_event", schema=None) as batch_op:
        batch_op.create_index("ix_battery_event_counterpart_time", ["counterpart_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_battery_event_type_time", ["type", "occurred_at"], unique=False)
        batch_op.create_index("ix_battery_event_reported_at", ["reported_at"], unique=False)

    with op.batch_alter_table("recovery_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_report_reported_on"), ["reported_on"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recovery_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_report_reported_on"))

    with op.batch_alter_table("battery_event", schema=None) as batch_op:
        batch_op.drop_index("ix_battery_event_reported_at")
        batch_op.drop_index("ix_battery_event_type_time")
        batch_op.drop_index("ix_battery_event_counterpart_time")
