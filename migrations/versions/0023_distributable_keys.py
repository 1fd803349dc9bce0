"""distributable keys: declarations, manifest corrections, recovery reports keyed with their enterprise; code table

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 16:40:00.000000

On Citus (see README, "Going to Citus") a distributed table's primary key and unique constraints must include its
distribution column: the enterprise for declarations, recovery reports and the corrections of a shipper's manifests,
the battery for batteries (whose codes move to a table of their own, distributed by the code). On PostgreSQL the
keys change; on SQLite, which is never distributed, `id` stays the table's own INTEGER PRIMARY KEY (a stricter key,
and SQLite's way of numbering rows) and the models name the composite key.
Every constraint is dropped and added in statements of its own: Citus takes one ADD per ALTER TABLE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    # Declarations by (id, enterprise_id), uq_declaration already starts with the enterprise; recovery reports by
    # (id, recycler_id).
    if _postgresql():
        for table, key in (("declaration", "enterprise_id"), ("recovery_report", "recycler_id")):
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.create_primary_key(f"{table}_pkey", table, ["id", key])

    # Manifest corrections carry their manifest's shipper, so that they can sit on the manifest's shard.
    op.add_column("batch_correction", sa.Column("shipper_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE batch_correction SET shipper_id ="
        " (SELECT shipper_id FROM transfer_batch WHERE transfer_batch.id = batch_correction.batch_id)"
    )
    if _postgresql():
        op.alter_column("batch_correction", "shipper_id", nullable=False)
        op.create_foreign_key(
            "batch_correction_shipper_id_fkey", "batch_correction", "enterprise", ["shipper_id"], ["id"]
        )
        op.drop_constraint("batch_correction_pkey", "batch_correction", type_="primary")
        op.create_primary_key("batch_correction_pkey", "batch_correction", ["id", "shipper_id"])
    else:
        # Nothing points at batch_correction, so SQLite's copy of the table trips no foreign key.
        with op.batch_alter_table("batch_correction") as batch_op:
            batch_op.alter_column("shipper_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key("batch_correction_shipper_id_fkey", "enterprise", ["shipper_id"], ["id"])

    # Battery codes: unique through a table keyed by the code, no longer through an index on battery.
    op.create_table(
        "battery_code",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("battery_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="battery_code_pkey"),
    )
    op.create_index("ix_battery_code_battery_id", "battery_code", ["battery_id"], unique=False)
    op.execute("INSERT INTO battery_code (code, battery_id) SELECT code, id FROM battery")
    op.drop_index("ix_battery_code", table_name="battery")
    op.create_index("ix_battery_code", "battery", ["code"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_battery_code", table_name="battery")
    op.create_index("ix_battery_code", "battery", ["code"], unique=True)
    op.drop_index("ix_battery_code_battery_id", table_name="battery_code")
    op.drop_table("battery_code")

    if _postgresql():
        op.drop_constraint("batch_correction_pkey", "batch_correction", type_="primary")
        op.create_primary_key("batch_correction_pkey", "batch_correction", ["id"])
        op.drop_constraint("batch_correction_shipper_id_fkey", "batch_correction", type_="foreignkey")
        op.drop_column("batch_correction", "shipper_id")
        for table in ("declaration", "recovery_report"):
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.create_primary_key(f"{table}_pkey", table, ["id"])
    else:
        with op.batch_alter_table("batch_correction") as batch_op:
            batch_op.drop_constraint("batch_correction_shipper_id_fkey", type_="foreignkey")
            batch_op.drop_column("shipper_id")
