"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 02:26:46.892563
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Needs a role allowed to create it, or an administrator who already did.
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "region",
        sa.Column("adcode", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("parent_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("geom", models.types.Geometry("MULTIPOLYGON"), nullable=False),
        sa.CheckConstraint("level IN ('province', 'prefecture', 'county')", name="ck_region_level"),
        sa.CheckConstraint("length(adcode) = 6", name="ck_region_adcode_len"),
        sa.ForeignKeyConstraint(
            ["parent_adcode"],
            ["region.adcode"],
        ),
        sa.PrimaryKeyConstraint("adcode"),
    )
    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_region_parent_adcode"), ["parent_adcode"], unique=False)

    op.create_table(
        "waste_category",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
        sa.Column("is_bulk", sa.Boolean(), nullable=False),
        sa.Column("is_tailings", sa.Boolean(), nullable=False),
        sa.Column("catalogue", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("parent_code", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["waste_category.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "park",
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("region_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("industries", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("transformation_status", sa.String(length=32), nullable=False),
        sa.Column("transformation_year", sa.Integer(), nullable=True),
        sa.Column("waste_free", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("boundary", models.types.Geometry("MULTIPOLYGON"), nullable=False),
        sa.CheckConstraint("level IN ('national', 'provincial', 'other')", name="ck_park_level"),
        sa.CheckConstraint(
            "transformation_status IN ('not_started', 'in_progress', 'completed')", name="ck_park_transformation_status"
        ),
        sa.ForeignKeyConstraint(
            ["region_adcode"],
            ["region.adcode"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name_zh", name="uq_park_name_zh"),
    )
    with op.batch_alter_table("park", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_park_region_adcode"), ["region_adcode"], unique=False)

    op.create_table(
        "target",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("series", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scope_adcode", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.CheckConstraint("value >= 0 AND value <= 1", name="ck_target_value_fraction"),
        sa.ForeignKeyConstraint(
            ["scope_adcode"],
            ["region.adcode"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_target_name"),
        sa.UniqueConstraint("scope_adcode", "year", "series", name="uq_target_scope_year_series"),
    )
    op.create_table(
        "enterprise",
        sa.Column("uscc", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("province_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("prefecture_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("county_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("park_id", sa.Integer(), nullable=True),
        sa.Column("location_overridden", sa.Boolean(), nullable=False),
        sa.CheckConstraint("length(uscc) = 18", name="ck_enterprise_uscc_len"),
        sa.CheckConstraint("lon >= -180 AND lon <= 180 AND lat >= -90 AND lat <= 90", name="ck_enterprise_lonlat"),
        sa.ForeignKeyConstraint(
            ["county_adcode"],
            ["region.adcode"],
        ),
        sa.ForeignKeyConstraint(
            ["park_id"],
            ["park.id"],
        ),
        sa.ForeignKeyConstraint(
            ["prefecture_adcode"],
            ["region.adcode"],
        ),
        sa.ForeignKeyConstraint(
            ["province_adcode"],
            ["region.adcode"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enterprise", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enterprise_county_adcode"), ["county_adcode"], unique=False)
        batch_op.create_index(batch_op.f("ix_enterprise_park_id"), ["park_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enterprise_prefecture_adcode"), ["prefecture_adcode"], unique=False)
        batch_op.create_index(batch_op.f("ix_enterprise_province_adcode"), ["province_adcode"], unique=False)
        batch_op.create_index(batch_op.f("ix_enterprise_uscc"), ["uscc"], unique=True)

    op.create_table(
        "target_category",
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["waste_category.code"],
        ),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("target_id", "category_code"),
    )
    op.create_table(
        "battery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("original_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("maker_code", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("chemistry", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
        sa.Column("production_date", sa.Date(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=True),
        sa.Column("rated_kwh", sa.Float(), nullable=True),
        sa.Column("mass_kg", sa.Float(), nullable=True),
        sa.CheckConstraint("level IN ('pack', 'module', 'cell')", name="ck_battery_level"),
        sa.CheckConstraint(
            "state IN ('produced', 'installed', 'retired', 'collected', 'tested', 'repurposed', 'in_cascade_use', 'dismantled', 'recovered')",
            name="ck_battery_state",
        ),
        sa.CheckConstraint("mass_kg IS NULL OR mass_kg >= 0", name="ck_battery_mass_nonneg"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id <> id", name="ck_battery_not_own_parent"),
        sa.CheckConstraint("rated_kwh IS NULL OR rated_kwh >= 0", name="ck_battery_kwh_nonneg"),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["enterprise.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["battery.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("battery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_battery_code"), ["code"], unique=True)
        batch_op.create_index(batch_op.f("ix_battery_holder_id"), ["holder_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_battery_original_code"), ["original_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_battery_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "declaration",
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("generated_t", sa.Float(), nullable=False),
        sa.Column("utilised_t", sa.Float(), nullable=False),
        sa.Column("utilised_prior_t", sa.Float(), nullable=False),
        sa.Column("disposed_t", sa.Float(), nullable=False),
        sa.Column("disposed_prior_t", sa.Float(), nullable=False),
        sa.Column("stored_t", sa.Float(), nullable=False),
        sa.Column("dumped_t", sa.Float(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("disposed_prior_t <= disposed_t", name="ck_declaration_disposed_prior"),
        sa.CheckConstraint(
            "generated_t >= 0 AND utilised_t >= 0 AND utilised_prior_t >= 0 AND disposed_t >= 0 AND disposed_prior_t >= 0 AND stored_t >= 0 AND dumped_t >= 0",
            name="ck_declaration_nonneg",
        ),
        sa.CheckConstraint("utilised_prior_t <= utilised_t", name="ck_declaration_utilised_prior"),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["waste_category.code"],
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "category_code", "year", name="uq_declaration"),
    )
    with op.batch_alter_table("declaration", schema=None) as batch_op:
        batch_op.create_index("ix_declaration_year_category", ["year", "category_code"], unique=False)

    op.create_table(
        "enterprise_role",
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "role IN ('generator', 'collector', 'transporter', 'utiliser', 'disposer', 'battery_maker', 'vehicle_maker', 'collection_outlet', 'cascade_user', 'recycler')",
            name="ck_enterprise_role_role",
        ),
        sa.ForeignKeyConstraint(["enterprise_id"], ["enterprise.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("enterprise_id", "role"),
    )
    op.create_table(
        "licence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("capacity_t", sa.Float(), nullable=False),
        sa.Column("licence_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "activity IN ('utilisation', 'disposal', 'storage', 'collection', 'transport')", name="ck_licence_activity"
        ),
        sa.CheckConstraint("capacity_t >= 0", name="ck_licence_capacity_nonneg"),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["waste_category.code"],
        ),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "category_code", "activity", "valid_from", name="uq_licence"),
    )
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_enterprise_id"), ["enterprise_id"], unique=False)

    op.create_table(
        "transfer_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("shipper_id", sa.Integer(), nullable=False),
        sa.Column("receiver_id", sa.Integer(), nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=True),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("weight_dispatched_t", sa.Float(), nullable=False),
        sa.Column("weight_received_t", sa.Float(), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejection_reason", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "route IN ('cement_admixture', 'building_materials', 'backfill', 'road_base', 'metal_recovery', 'other_utilisation', 'disposal', 'storage')",
            name="ck_batch_route",
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'dispatched', 'received', 'rejected', 'corrected', 'cancelled')",
            name="ck_batch_status",
        ),
        sa.CheckConstraint("shipper_id <> receiver_id", name="ck_batch_distinct_parties"),
        sa.CheckConstraint("weight_dispatched_t >= 0", name="ck_batch_dispatched_nonneg"),
        sa.CheckConstraint("weight_received_t IS NULL OR weight_received_t >= 0", name="ck_batch_received_nonneg"),
        sa.ForeignKeyConstraint(
            ["carrier_id"],
            ["enterprise.id"],
        ),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["waste_category.code"],
        ),
        sa.ForeignKeyConstraint(
            ["receiver_id"],
            ["enterprise.id"],
        ),
        sa.ForeignKeyConstraint(
            ["shipper_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shipper_id", "idempotency_key", name="uq_batch_idempotency"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.create_index("ix_batch_receiver_year", ["receiver_id", "year"], unique=False)
        batch_op.create_index("ix_batch_shipper_year", ["shipper_id", "year"], unique=False)
        batch_op.create_index("ix_batch_year_category", ["year", "category_code"], unique=False)

    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("scope_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("scope_park_id", sa.Integer(), nullable=True),
        sa.Column("scope_enterprise_id", sa.Integer(), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'bureau', 'park_manager', 'enterprise')", name="ck_user_role"),
        sa.ForeignKeyConstraint(
            ["scope_adcode"],
            ["region.adcode"],
        ),
        sa.ForeignKeyConstraint(
            ["scope_enterprise_id"],
            ["enterprise.id"],
        ),
        sa.ForeignKeyConstraint(
            ["scope_park_id"],
            ["park.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_account_username"), ["username"], unique=True)

    op.create_table(
        "whitelist_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("batch", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("listed_on", sa.Date(), nullable=False),
        sa.Column("revoked_on", sa.Date(), nullable=True),
        sa.CheckConstraint("kind IN ('cascade_use', 'recycling')", name="ck_whitelist_kind"),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "kind", "batch", name="uq_whitelist"),
    )
    with op.batch_alter_table("whitelist_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_whitelist_entry_enterprise_id"), ["enterprise_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("table_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("row_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.CheckConstraint("channel IN ('web', 'api', 'cli', 'import', 'system')", name="ck_audit_channel"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_table_row", ["table_name", "row_id"], unique=False)

    op.create_table(
        "battery_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("battery_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("counterpart_id", sa.Integer(), nullable=True),
        sa.Column("region_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("vin", sqlmodel.sql.sqltypes.AutoString(length=17), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "type IN ('produced', 'installed', 'retired', 'collected', 'tested', 'repurposed', 'in_cascade_use', 'dismantled', 'recovered', 'transferred')",
            name="ck_battery_event_type",
        ),
        sa.CheckConstraint("reported_at >= occurred_at", name="ck_battery_event_reported_after"),
        sa.ForeignKeyConstraint(
            ["battery_id"],
            ["battery.id"],
        ),
        sa.ForeignKeyConstraint(
            ["counterpart_id"],
            ["enterprise.id"],
        ),
        sa.ForeignKeyConstraint(
            ["region_adcode"],
            ["region.adcode"],
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("battery_event", schema=None) as batch_op:
        batch_op.create_index("ix_battery_event_battery_time", ["battery_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_battery_event_reporter_time", ["reporter_id", "occurred_at"], unique=False)

    op.create_table(
        "period_lock",
        sa.Column("region_adcode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.Integer(), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["locked_by"],
            ["user_account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["region_adcode"],
            ["region.adcode"],
        ),
        sa.PrimaryKeyConstraint("region_adcode", "year"),
    )
    op.create_table(
        "recovery_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recycler_id", sa.Integer(), nullable=False),
        sa.Column("battery_id", sa.Integer(), nullable=True),
        sa.Column("reported_on", sa.Date(), nullable=False),
        sa.Column("edition", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("input_mass_kg", sa.Float(), nullable=False),
        sa.Column("electrode_powder_kg", sa.Float(), nullable=False),
        sa.Column("lithium_in_kg", sa.Float(), nullable=False),
        sa.Column("lithium_out_kg", sa.Float(), nullable=False),
        sa.Column("nickel_in_kg", sa.Float(), nullable=False),
        sa.Column("nickel_out_kg", sa.Float(), nullable=False),
        sa.Column("cobalt_in_kg", sa.Float(), nullable=False),
        sa.Column("cobalt_out_kg", sa.Float(), nullable=False),
        sa.Column("manganese_in_kg", sa.Float(), nullable=False),
        sa.Column("manganese_out_kg", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "input_mass_kg >= 0 AND electrode_powder_kg >= 0 AND lithium_in_kg >= 0 AND lithium_out_kg >= 0 AND nickel_in_kg >= 0 AND nickel_out_kg >= 0 AND cobalt_in_kg >= 0 AND cobalt_out_kg >= 0 AND manganese_in_kg >= 0 AND manganese_out_kg >= 0",
            name="ck_recovery_nonneg",
        ),
        sa.ForeignKeyConstraint(
            ["battery_id"],
            ["battery.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recycler_id"],
            ["enterprise.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recovery_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_report_battery_id"), ["battery_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recovery_report_recycler_id"), ["recycler_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_region_geom ON region USING gist (geom)")
        op.execute("CREATE INDEX ix_park_boundary ON park USING gist (boundary)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_park_boundary")
        op.execute("DROP INDEX IF EXISTS ix_region_geom")
    with op.batch_alter_table("recovery_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_report_recycler_id"))
        batch_op.drop_index(batch_op.f("ix_recovery_report_battery_id"))

    op.drop_table("recovery_report")
    op.drop_table("period_lock")
    with op.batch_alter_table("battery_event", schema=None) as batch_op:
        batch_op.drop_index("ix_battery_event_reporter_time")
        batch_op.drop_index("ix_battery_event_battery_time")

    op.drop_table("battery_event")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_table_row")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("whitelist_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whitelist_entry_enterprise_id"))

    op.drop_table("whitelist_entry")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_account_username"))

    op.drop_table("user_account")
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_year_category")
        batch_op.drop_index("ix_batch_shipper_year")
        batch_op.drop_index("ix_batch_receiver_year")

    op.drop_table("transfer_batch")
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_enterprise_id"))

    op.drop_table("licence")
    op.drop_table("enterprise_role")
    with op.batch_alter_table("declaration", schema=None) as batch_op:
        batch_op.drop_index("ix_declaration_year_category")

    op.drop_table("declaration")
    with op.batch_alter_table("battery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_battery_parent_id"))
        batch_op.drop_index(batch_op.f("ix_battery_original_code"))
        batch_op.drop_index(batch_op.f("ix_battery_holder_id"))
        batch_op.drop_index(batch_op.f("ix_battery_code"))

    op.drop_table("battery")
    op.drop_table("target_category")
    with op.batch_alter_table("enterprise", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enterprise_uscc"))
        batch_op.drop_index(batch_op.f("ix_enterprise_province_adcode"))
        batch_op.drop_index(batch_op.f("ix_enterprise_prefecture_adcode"))
        batch_op.drop_index(batch_op.f("ix_enterprise_park_id"))
        batch_op.drop_index(batch_op.f("ix_enterprise_county_adcode"))

    op.drop_table("enterprise")
    op.drop_table("target")
    with op.batch_alter_table("park", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_park_region_adcode"))

    op.drop_table("park")
    op.drop_table("waste_category")
    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_region_parent_adcode"))

    op.drop_table("region")
