"""summary of the Sankey's paths, kept on write; the shares carry their path's parties and routes

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

PATH_KEYS = (
    "year",
    "category_code",
    "placement",
    "straight",
    "generator_id",
    "first_receiver_id",
    "shipper_id",
    "receiver_id",
    "first_route",
    "route",
)


def upgrade() -> None:
    # Plain ADD COLUMN with constant defaults: no copy of a big table on either database.
    for name in ("first_receiver_id", "shipper_id", "receiver_id"):
        op.add_column("manifest_share", sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.add_column("manifest_share", sa.Column("first_route", sa.String(length=32), nullable=False, server_default=""))
    op.execute(
        "UPDATE manifest_share SET first_receiver_id = o.receiver_id, first_route = o.route,"
        " shipper_id = m.shipper_id, receiver_id = m.receiver_id, route = m.route"
        " FROM transfer_batch m, transfer_batch o"
        " WHERE m.id = manifest_share.manifest_id AND o.id = manifest_share.origin_id"
    )
    op.create_table(
        "summary_path",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=9), nullable=False),
        sa.Column("placement", sa.String(length=16), nullable=False),
        sa.Column("straight", sa.Boolean(), nullable=False),
        sa.Column("generator_id", sa.Integer(), nullable=False),
        sa.Column("first_receiver_id", sa.Integer(), nullable=False),
        sa.Column("shipper_id", sa.Integer(), nullable=False),
        sa.Column("receiver_id", sa.Integer(), nullable=False),
        sa.Column("first_route", sa.String(length=32), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("kg", sa.BigInteger(), nullable=False),
        sa.Column("utilised_kg", sa.BigInteger(), nullable=False),
        sa.Column("origins", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*PATH_KEYS),
    )
    keys = (
        "s.origin_year, s.category_code, s.placement, s.origin_id = s.manifest_id, s.origin_shipper_id,"
        " s.first_receiver_id, s.shipper_id, s.receiver_id, s.first_route, s.route"
    )
    op.execute(
        f"INSERT INTO summary_path ({', '.join(PATH_KEYS)}, kg, utilised_kg, origins)"
        f" SELECT {keys}, SUM(s.kg), SUM(CASE WHEN s.counted AND s.placement = 'final' THEN s.kg ELSE 0 END),"
        " COUNT(DISTINCT s.origin_id)"
        " FROM manifest_share s WHERE s.placement IN ('final', 'held')"
        f" GROUP BY {keys}"
    )


def downgrade() -> None:
    op.drop_table("summary_path")
    for name in ("first_route", "receiver_id", "shipper_id", "first_receiver_id"):
        op.drop_column("manifest_share", name)
