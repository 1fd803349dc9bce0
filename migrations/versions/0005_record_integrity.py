"""record integrity: the service's own number counters, the shipper's reference kept apart from the number

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 04:00:00.000000
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Numbers the service issued: SC<year>-<7 digits>. Anything else in the column was typed by a user.
_ISSUED = re.compile(r"^SC(\d{4})-(\d{7,9})$")


def upgrade() -> None:
    op.create_table(
        "number_counter",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.CheckConstraint("last >= 0", name="ck_number_counter_nonneg"),
        sa.PrimaryKeyConstraint("kind", "year"),
    )
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=64), nullable=True))

    # Start each year's counter after the highest number already issued in that shape, so that no new number
    # collides with a stored one; numbers of any other shape stay as they are and never feed the counter.
    bind = op.get_bind()
    highest: dict[int, int] = {}
    for (number,) in bind.execute(sa.text("SELECT number FROM transfer_batch")):
        found = _ISSUED.match(number or "")
        if found:
            year, sequence = int(found.group(1)), int(found.group(2))
            highest[year] = max(highest.get(year, 0), sequence)
    counters = sa.table("number_counter", sa.column("kind"), sa.column("year"), sa.column("last"))
    if highest:
        op.bulk_insert(counters, [{"kind": "manifest", "year": y, "last": n} for y, n in sorted(highest.items())])


def downgrade() -> None:
    with op.batch_alter_table("transfer_batch", schema=None) as batch_op:
        batch_op.drop_column("reference")
    op.drop_table("number_counter")
