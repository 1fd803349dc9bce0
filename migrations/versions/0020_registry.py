"""registry: whitelist entries carry their edition; enterprises and parks count their edits (a version column)

Revision ID: 0020
Revises: 0016
Create Date: 2026-12-07 13:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0020"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "whitelist_entry",
        sa.Column("edition", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default=""),
    )
    op.add_column("enterprise", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("park", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it): a batch copy of the enterprise table would trip the foreign keys
    # that point at it.
    for table, column in (("park", "version"), ("enterprise", "version"), ("whitelist_entry", "edition")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
