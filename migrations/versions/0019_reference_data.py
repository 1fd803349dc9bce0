"""reference data kept by the bureaus: targets with validity, retirement and a revision; categories with validity

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

VALIDITY = "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from"
# The province's targets name their document by its own (Chinese) title, as a bureau's targets do.
ENGLISH_SOURCE = "Implementation Plan for Carbon Peak in the Industrial Field of Sichuan Province (2023)"
CHINESE_SOURCE = "四川省工业领域碳达峰实施方案（2023）"


def upgrade() -> None:
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
        # Targets stored before this revision are their first version.
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_check_constraint("ck_target_validity", VALIDITY)
        batch_op.create_check_constraint("ck_target_revision", "revision >= 1")
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.alter_column("revision", server_default=None)
    with op.batch_alter_table("waste_category", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
        batch_op.create_check_constraint("ck_category_validity", VALIDITY)
    op.execute(
        sa.text("UPDATE target SET source = :zh WHERE source = :en").bindparams(zh=CHINESE_SOURCE, en=ENGLISH_SOURCE)
    )


def downgrade() -> None:
    op.execute(
        sa.text("UPDATE target SET source = :en WHERE source = :zh").bindparams(zh=CHINESE_SOURCE, en=ENGLISH_SOURCE)
    )
    with op.batch_alter_table("waste_category", schema=None) as batch_op:
        batch_op.drop_constraint("ck_category_validity", type_="check")
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.drop_constraint("ck_target_revision", type_="check")
        batch_op.drop_constraint("ck_target_validity", type_="check")
        batch_op.drop_column("revision")
        batch_op.drop_column("retired_at")
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
