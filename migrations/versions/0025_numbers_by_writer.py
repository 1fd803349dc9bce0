"""manifest numbers written by the manifest writers, not a trigger: Citus runs no trigger across shards

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 20:15:00.000000

The trigger of migration 0022 wrote manifest_number with every insert into transfer_batch. On Citus, transfer_batch
is spread over the workers by shipper while the number table stays on the coordinator, where a trigger on a shard
cannot write. flows/waste/numbers.py writes the row instead, with every manifest, in its transaction.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tr_batch_number" + (" ON transfer_batch" if _pg() else ""))
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS manifest_number_written()")


def downgrade() -> None:
    # The trigger as migration 0022 made it.
    made = importlib.import_module("migrations.versions.0022_partitions")
    if _pg():
        op.execute(made.PG_NUMBER_FUNCTION)
        op.execute(
            "CREATE TRIGGER tr_batch_number AFTER INSERT ON transfer_batch"
            " FOR EACH ROW EXECUTE FUNCTION manifest_number_written()"
        )
    else:
        op.execute(made.SQLITE_NUMBER_TRIGGER)


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"
