"""rate revisions: the sums behind a locked year's figures before and after an approved correction; the evidence
files a correction request carries

Revision ID: 0016
Revises: 0018
Create Date: 2026-12-07 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None

SUMS = ("generated", "utilised", "utilised_prior", "manifest")


def upgrade() -> None:
    op.create_table(
        "rate_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("correction_id", sa.Integer(), nullable=False),
        sa.Column("scope_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("scope_key", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("categories", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        *(
            sa.Column(f"{name}_{when}_kg", sa.BigInteger(), nullable=False)
            for name in SUMS
            for when in ("before", "after")
        ),
        sa.Column("revised_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "scope_kind IN ('province', 'prefecture', 'county', 'park', 'enterprise')", name="ck_revision_scope"
        ),
        sa.ForeignKeyConstraint(["correction_id"], ["correction_request.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("correction_id", "scope_kind", "scope_key", name="uq_revision_scope"),
    )
    op.create_index("ix_rate_revision_correction_id", "rate_revision", ["correction_id"])
    op.create_index("ix_revision_year_scope", "rate_revision", ["year", "scope_kind", "scope_key"])
    op.create_table(
        "correction_attachment",
        sa.Column("correction_id", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["attachment_id"], ["attachment.id"]),
        sa.ForeignKeyConstraint(["correction_id"], ["correction_request.id"]),
        sa.PrimaryKeyConstraint("correction_id", "attachment_id"),
    )
    op.create_index("ix_correction_attachment_attachment_id", "correction_attachment", ["attachment_id"])


def downgrade() -> None:
    op.drop_index("ix_correction_attachment_attachment_id", table_name="correction_attachment")
    op.drop_table("correction_attachment")
    op.drop_index("ix_revision_year_scope", table_name="rate_revision")
    op.drop_index("ix_rate_revision_correction_id", table_name="rate_revision")
    op.drop_table("rate_revision")
