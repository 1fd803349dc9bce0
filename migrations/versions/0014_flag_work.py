"""flag work: each audit flag's status, assignee and reason, and the notes and answers written on it

Revision ID: 0014
Revises: 0020
Create Date: 2026-12-07 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_work",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=True),
        sa.Column("other_enterprise_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'under_review', 'resolved', 'dismissed')", name="ck_flag_work_status"),
        sa.CheckConstraint("status <> 'dismissed' OR length(reason) > 0", name="ck_flag_work_reason"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprise.id"]),
        sa.ForeignKeyConstraint(["other_enterprise_id"], ["enterprise.id"]),
        sa.ForeignKeyConstraint(["assignee_id"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_flag_work_year_status", "flag_work", ["year", "status"])
    op.create_index(op.f("ix_flag_work_enterprise_id"), "flag_work", ["enterprise_id"])
    op.create_index(op.f("ix_flag_work_assignee_id"), "flag_work", ["assignee_id"])
    op.create_table(
        "flag_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("attachment_id", sa.Integer(), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('note', 'answer')", name="ck_flag_entry_kind"),
        sa.CheckConstraint("length(body) > 0", name="ck_flag_entry_body"),
        sa.ForeignKeyConstraint(["flag_key"], ["flag_work.key"]),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprise.id"]),
        sa.ForeignKeyConstraint(["author_id"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["attachment_id"], ["attachment.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_flag_entry_flag_key"), "flag_entry", ["flag_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flag_entry_flag_key"), table_name="flag_entry")
    op.drop_table("flag_entry")
    op.drop_index(op.f("ix_flag_work_assignee_id"), table_name="flag_work")
    op.drop_index(op.f("ix_flag_work_enterprise_id"), table_name="flag_work")
    op.drop_index("ix_flag_work_year_status", table_name="flag_work")
    op.drop_table("flag_work")
