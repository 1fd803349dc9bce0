"""correction asks: a bureau asks an enterprise to correct named fields of a manifest or a declaration

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-07 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correction_ask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("party", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("asked_by", sa.Integer(), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'filed', 'contested', 'dropped', 'withdrawn')", name="ck_correction_ask_state"
        ),
        sa.CheckConstraint("table_name IN ('transfer_batch', 'declaration')", name="ck_correction_ask_table"),
        sa.CheckConstraint("length(reason) > 0", name="ck_correction_ask_reason"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprise.id"]),
        sa.ForeignKeyConstraint(["asked_by"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["answered_by"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["correction_id"], ["correction_request.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_correction_ask_enterprise_id", "correction_ask", ["enterprise_id"])
    op.create_index("ix_correction_ask_record", "correction_ask", ["table_name", "row_id"])


def downgrade() -> None:
    op.drop_index("ix_correction_ask_record", table_name="correction_ask")
    op.drop_index("ix_correction_ask_enterprise_id", table_name="correction_ask")
    op.drop_table("correction_ask")
