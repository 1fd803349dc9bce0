"""dismantler: the end-of-life vehicle dismantler role (报废机动车回收拆解企业), Art. 13 of the 2018 provisions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:30:00.000000

Only the check constraint of enterprise_role changes: one more allowed role.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BEFORE = (
    "'generator', 'collector', 'transporter', 'utiliser', 'disposer', 'battery_maker', 'vehicle_maker', "
    "'collection_outlet', 'cascade_user', 'recycler'"
)
AFTER = BEFORE + ", 'dismantler'"


def upgrade() -> None:
    with op.batch_alter_table("enterprise_role", schema=None) as batch_op:
        batch_op.drop_constraint("ck_enterprise_role_role", type_="check")
        batch_op.create_check_constraint("ck_enterprise_role_role", f"role IN ({AFTER})")


def downgrade() -> None:
    dismantlers = op.get_bind().exec_driver_sql("SELECT COUNT(*) FROM enterprise_role WHERE role = 'dismantler'")
    if dismantlers.scalar():
        raise RuntimeError("enterprises still play the dismantler role; remove it from them first")
    with op.batch_alter_table("enterprise_role", schema=None) as batch_op:
        batch_op.drop_constraint("ck_enterprise_role_role", type_="check")
        batch_op.create_check_constraint("ck_enterprise_role_role", f"role IN ({BEFORE})")
