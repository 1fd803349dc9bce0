"""reference data kept by the bureaus: targets with validity, retirement and a revision; categories with validity

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None

VALIDITY = "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from"
# The province's targets name their document by its own (Chinese) title, as a bureau's targets do.
ENGLISH_SOURCE = "Implementation Plan for Carbon Peak in the Industrial Field of Sichuan Province (2023)"
CHINESE_SOURCE = "四川省工业领域碳达峰实施方案（2023）"
COLUMNS = {
    "target": ("valid_from", "valid_to", "retired_at", "revision"),
    "waste_category": ("valid_from", "valid_to"),
}
CHECKS = {"target": ("ck_target_validity", "ck_target_revision"), "waste_category": ("ck_category_validity",)}


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch copies the table and drops the old one, which the foreign keys
    # of every declaration, manifest and target category (on delete cascade) refuse or follow. SQLite cannot add a
    # CHECK to a table in place, so there the writers alone keep the two rules below.
    op.add_column("target", sa.Column("valid_from", sa.Date(), nullable=True))
    op.add_column("target", sa.Column("valid_to", sa.Date(), nullable=True))
    op.add_column("target", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    # Targets stored before this revision are their first version.
    op.add_column("target", sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("waste_category", sa.Column("valid_from", sa.Date(), nullable=True))
    op.add_column("waste_category", sa.Column("valid_to", sa.Date(), nullable=True))
    if not _sqlite():
        op.alter_column("target", "revision", server_default=None)
        op.create_check_constraint("ck_target_validity", "target", VALIDITY)
        op.create_check_constraint("ck_target_revision", "target", "revision >= 1")
        op.create_check_constraint("ck_category_validity", "waste_category", VALIDITY)
    op.execute(
        sa.text("UPDATE target SET source = :zh WHERE source = :en").bindparams(zh=CHINESE_SOURCE, en=ENGLISH_SOURCE)
    )


def downgrade() -> None:
    op.execute(
        sa.text("UPDATE target SET source = :en WHERE source = :zh").bindparams(zh=CHINESE_SOURCE, en=ENGLISH_SOURCE)
    )
    for table, names in COLUMNS.items():
        if not _sqlite():
            for check in CHECKS[table]:
                op.drop_constraint(check, table, type_="check")
        for name in names:
            # SQLite (3.35 and later) drops a column in place: no copy of a table others refer to.
            op.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {name}"))
