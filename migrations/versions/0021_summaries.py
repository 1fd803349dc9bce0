"""summaries kept on write: per year, generator, category and route; per year, region cell and category

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-07 16:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None

UTILISATION_ROUTES = (
    "('backfill', 'building_materials', 'cement_admixture', 'metal_recovery', 'other_utilisation', 'road_base')"
)


def _local_date(column: str) -> str:
    # As flows.kernel.clock.local_date: the China Standard Time date of a stored UTC time.
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST(timezone('Asia/Shanghai', {column}) AS DATE)"
    return f"date({column}, '+8 hours')"


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): manifest_share is referenced by nothing, but a copy of a big table is slow.
    op.add_column("manifest_share", sa.Column("route", sa.String(length=32), nullable=False, server_default=""))
    op.add_column("manifest_share", sa.Column("counted", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "summary_generator",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("generator_id", sa.Integer(), sa.ForeignKey("enterprise.id"), nullable=False),
        sa.Column("category_code", sa.String(length=9), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("province_adcode", sa.String(length=12), nullable=False),
        sa.Column("prefecture_adcode", sa.String(length=12), nullable=False),
        sa.Column("county_adcode", sa.String(length=12), nullable=False),
        sa.Column("utilised_kg", sa.BigInteger(), nullable=False),
        sa.Column("final_kg", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", "generator_id", "category_code", "route"),
    )
    op.create_index("ix_summary_generator_generator", "summary_generator", ["generator_id"])
    op.create_table(
        "summary_county",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("province_adcode", sa.String(length=12), nullable=False),
        sa.Column("prefecture_adcode", sa.String(length=12), nullable=False),
        sa.Column("county_adcode", sa.String(length=12), nullable=False),
        sa.Column("category_code", sa.String(length=9), nullable=False),
        sa.Column("utilised_kg", sa.BigInteger(), nullable=False),
        sa.Column("final_kg", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", "province_adcode", "prefecture_adcode", "county_adcode", "category_code"),
    )
    # Fill from the base rows, with the condition of flows.waste.rates.manifest_utilised written out.
    op.execute(
        "UPDATE manifest_share SET"
        " route = (SELECT m.route FROM transfer_batch m WHERE m.id = manifest_share.manifest_id),"
        " counted = EXISTS (SELECT 1 FROM transfer_batch m WHERE m.id = manifest_share.manifest_id"
        " AND m.status IN ('received', 'corrected') AND m.weight_received_kg IS NOT NULL"
        f" AND m.route IN {UTILISATION_ROUTES}"
        " AND EXISTS (SELECT 1 FROM licence l WHERE l.enterprise_id = m.receiver_id"
        " AND l.category_code = m.category_code AND l.activity = 'utilisation'"
        f" AND l.valid_from <= {_local_date('m.received_at')}"
        f" AND (l.valid_to IS NULL OR l.valid_to >= {_local_date('m.received_at')})))"
        " WHERE placement = 'final'"
    )
    op.execute(
        "INSERT INTO summary_generator (year, generator_id, category_code, route, province_adcode, prefecture_adcode,"
        " county_adcode, utilised_kg, final_kg)"
        " SELECT s.origin_year, s.origin_shipper_id, s.category_code, s.route, COALESCE(e.province_adcode, ''),"
        " COALESCE(e.prefecture_adcode, ''), COALESCE(e.county_adcode, ''),"
        " SUM(CASE WHEN s.counted THEN s.kg ELSE 0 END), SUM(s.kg)"
        " FROM manifest_share s JOIN enterprise e ON e.id = s.origin_shipper_id WHERE s.placement = 'final'"
        " GROUP BY s.origin_year, s.origin_shipper_id, s.category_code, s.route, e.province_adcode,"
        " e.prefecture_adcode, e.county_adcode"
    )
    op.execute(
        "INSERT INTO summary_county (year, province_adcode, prefecture_adcode, county_adcode, category_code,"
        " utilised_kg, final_kg)"
        " SELECT year, province_adcode, prefecture_adcode, county_adcode, category_code, SUM(utilised_kg),"
        " SUM(final_kg) FROM summary_generator"
        " GROUP BY year, province_adcode, prefecture_adcode, county_adcode, category_code"
    )


def downgrade() -> None:
    op.drop_table("summary_county")
    op.drop_index("ix_summary_generator_generator", table_name="summary_generator")
    op.drop_table("summary_generator")
    op.drop_column("manifest_share", "counted")
    op.drop_column("manifest_share", "route")
