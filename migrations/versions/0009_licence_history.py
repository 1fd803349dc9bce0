"""licence history: who recorded each licence's current version and when, and every version it superseded

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 09:00:00.000000

Licences stored before this revision are their first version (revision 1), recorded by no one known. A licence whose
validity ends before it begins is refused by the new check: the upgrade stops and names how many there are.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ACTIVITIES = "'utilisation', 'disposal', 'storage', 'collection', 'transport'"


def upgrade() -> None:
    bind = op.get_bind()
    backwards = bind.execute(sa.text("SELECT COUNT(*) FROM licence WHERE valid_to < valid_from")).scalar()
    if backwards:
        raise RuntimeError(f"{backwards} licences end before they begin; correct their valid_to first")
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("recorded_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_licence_recorded_by", "user_account", ["recorded_by"], ["id"])
        batch_op.create_check_constraint("ck_licence_validity", "valid_to IS NULL OR valid_to >= valid_from")
        batch_op.create_check_constraint("ck_licence_revision", "revision >= 1")
    # The default only filled the rows already there: the model gives every new row its revision.
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.alter_column("revision", server_default=None)
    op.create_table(
        "licence_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("licence_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("capacity_kg", sa.BigInteger(), nullable=False),
        sa.Column("licence_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"activity IN ({ACTIVITIES})", name="ck_licence_revision_activity"),
        sa.CheckConstraint("capacity_kg >= 0", name="ck_licence_revision_capacity"),
        sa.ForeignKeyConstraint(["licence_id"], ["licence.id"]),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprise.id"]),
        sa.ForeignKeyConstraint(["category_code"], ["waste_category.code"]),
        sa.ForeignKeyConstraint(["recorded_by"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["superseded_by"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("licence_id", "revision", name="uq_licence_revision"),
    )
    op.create_index("ix_licence_revision_licence_id", "licence_revision", ["licence_id"])


def downgrade() -> None:
    # The schema before 0009 holds one version of a licence: refuse rather than lose the history.
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM licence_revision")).scalar():
        raise RuntimeError("superseded licence versions are stored; the schema before 0009 cannot hold them")
    op.drop_index("ix_licence_revision_licence_id", table_name="licence_revision")
    op.drop_table("licence_revision")
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_constraint("ck_licence_revision", type_="check")
        batch_op.drop_constraint("ck_licence_validity", type_="check")
        batch_op.drop_constraint("fk_licence_recorded_by", type_="foreignkey")
        batch_op.drop_column("recorded_by")
        batch_op.drop_column("recorded_at")
        batch_op.drop_column("revision")
