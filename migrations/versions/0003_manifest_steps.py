"""manifest steps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 03:06:46.124759
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.CheckConstraint("length(reason) > 0", name="ck_batch_correction_reason"),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["transfer_batch.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batch_correction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_correction_batch_id"), ["batch_id"], unique=False)

    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejected_t", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True))
        batch_op.create_check_constraint("ck_batch_rejected_nonneg", "rejected_t IS NULL OR rejected_t >= 0")


def downgrade() -> None:
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.drop_constraint("ck_batch_rejected_nonneg", type_="check")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("rejected_t")

    with op.batch_alter_table("batch_correction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_correction_batch_id"))

    op.drop_table("batch_correction")
