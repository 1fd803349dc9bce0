"""waste chains: the sources a manifest names, the draws and shares kept on write, the transfer route, the handover

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00.000000

Manifests stored before this revision named no sources: each counts where it ended, as before (received at a final
step, held at a store, or on the road); `circuflow chains reallocate` recomputes every chain with the rules of
flows/waste/chains.py, drawing forwardings that name no source from what their shipper held.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_ROUTES = (
    "'cement_admixture', 'building_materials', 'backfill', 'road_base', 'metal_recovery', 'other_utilisation', "
    "'disposal', 'storage'"
)
NEW_ROUTES = OLD_ROUTES + ", 'transfer'"


def upgrade() -> None:
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.drop_constraint("ck_batch_route", type_="check")
        batch_op.create_check_constraint("ck_batch_route", f"route IN ({NEW_ROUTES})")
        batch_op.add_column(sa.Column("vehicle_plate", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("transport_mode", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("packaging", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("weighing", sa.String(length=32), nullable=True))
        batch_op.create_check_constraint(
            "ck_batch_transport_mode",
            "transport_mode IS NULL OR transport_mode IN ('road', 'rail', 'waterway', 'conveyor', 'pipeline')",
        )
        batch_op.create_check_constraint(
            "ck_batch_weighing", "weighing IS NULL OR weighing IN ('weighed', 'estimated')"
        )
    op.create_table(
        "manifest_source",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("weight_kg", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("manifest_id <> source_id", name="ck_manifest_source_not_itself"),
        sa.CheckConstraint("weight_kg IS NULL OR weight_kg > 0", name="ck_manifest_source_weight"),
        sa.ForeignKeyConstraint(["manifest_id"], ["transfer_batch.id"]),
        sa.ForeignKeyConstraint(["source_id"], ["transfer_batch.id"]),
        sa.PrimaryKeyConstraint("manifest_id", "source_id"),
    )
    op.create_index("ix_manifest_source_source", "manifest_source", ["source_id"])
    op.create_table(
        "manifest_draw",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("kg", sa.BigInteger(), nullable=False),
        sa.Column("named", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kg >= 0", name="ck_manifest_draw_kg"),
        sa.ForeignKeyConstraint(["manifest_id"], ["transfer_batch.id"]),
        sa.ForeignKeyConstraint(["source_id"], ["transfer_batch.id"]),
        sa.PrimaryKeyConstraint("manifest_id", "source_id"),
    )
    op.create_index("ix_manifest_draw_source", "manifest_draw", ["source_id"])
    op.create_table(
        "manifest_share",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("origin_id", sa.Integer(), nullable=False),
        sa.Column("placement", sa.String(length=32), nullable=False),
        sa.Column("kg", sa.BigInteger(), nullable=False),
        sa.Column("origin_shipper_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=9), nullable=False),
        sa.Column("origin_year", sa.Integer(), nullable=False),
        sa.CheckConstraint("placement IN ('final', 'held', 'transit')", name="ck_manifest_share_placement"),
        sa.CheckConstraint("kg > 0", name="ck_manifest_share_kg"),
        sa.ForeignKeyConstraint(["manifest_id"], ["transfer_batch.id"]),
        sa.ForeignKeyConstraint(["origin_id"], ["transfer_batch.id"]),
        sa.ForeignKeyConstraint(["origin_shipper_id"], ["enterprise.id"]),
        sa.PrimaryKeyConstraint("manifest_id", "origin_id", "placement"),
    )
    op.create_index("ix_manifest_share_origin", "manifest_share", ["origin_id"])
    op.create_index("ix_manifest_share_shipper_year", "manifest_share", ["origin_shipper_id", "origin_year"])
    op.create_index("ix_manifest_share_year_category", "manifest_share", ["origin_year", "category_code"])
    # Every stored manifest is its own first manifest: where it ended, as the figures counted it until now.
    op.execute(
        "INSERT INTO manifest_share (manifest_id, origin_id, placement, kg, origin_shipper_id, category_code,"
        " origin_year)"
        " SELECT id, id, CASE WHEN route = 'storage' THEN 'held' ELSE 'final' END, weight_received_kg, shipper_id,"
        " category_code, year FROM transfer_batch"
        " WHERE status IN ('received', 'corrected') AND weight_received_kg > 0"
    )
    op.execute(
        "INSERT INTO manifest_share (manifest_id, origin_id, placement, kg, origin_shipper_id, category_code,"
        " origin_year)"
        " SELECT id, id, 'transit', weight_dispatched_kg, shipper_id, category_code, year FROM transfer_batch"
        " WHERE status = 'dispatched' AND weight_dispatched_kg > 0"
    )


def downgrade() -> None:
    op.drop_index("ix_manifest_share_year_category", table_name="manifest_share")
    op.drop_index("ix_manifest_share_shipper_year", table_name="manifest_share")
    op.drop_index("ix_manifest_share_origin", table_name="manifest_share")
    op.drop_table("manifest_share")
    op.drop_index("ix_manifest_draw_source", table_name="manifest_draw")
    op.drop_table("manifest_draw")
    op.drop_index("ix_manifest_source_source", table_name="manifest_source")
    op.drop_table("manifest_source")
    # A manifest on the transfer route has no place in the older schema: refuse rather than lose it.
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM transfer_batch WHERE route = 'transfer'")).scalar():
        raise RuntimeError("manifests on the transfer route are stored; the schema before 0008 cannot hold them")
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.drop_constraint("ck_batch_weighing", type_="check")
        batch_op.drop_constraint("ck_batch_transport_mode", type_="check")
        batch_op.drop_column("weighing")
        batch_op.drop_column("packaging")
        batch_op.drop_column("transport_mode")
        batch_op.drop_column("vehicle_plate")
        batch_op.drop_constraint("ck_batch_route", type_="check")
        batch_op.create_check_constraint("ck_batch_route", f"route IN ({OLD_ROUTES})")
