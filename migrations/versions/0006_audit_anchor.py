"""audit anchor: the signed head of the audit log, and the sign-in throttle per client address

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 06:00:00.000000

The head is signed with a key the database does not hold, so this migration cannot sign it: a log upgraded from
0005 has no head until the first entry written after the upgrade (any sign-in writes one) or `circuflow audit-log
anchor` signs it; until then verification reports the log as "not anchored".
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    # The head moves with every entry but is never removed: a deleted head would let the next entry sign a
    # truncated log as if it were whole.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_head_kept() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'audit_head is never deleted'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_head_kept BEFORE DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION audit_head_kept()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head"
            " BEGIN SELECT RAISE(ABORT, 'audit_head is never deleted'); END"
        )

    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_login_failure_client_at", ["client", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failure_client_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_head_kept ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_kept()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_delete")
    op.drop_table("audit_head")
