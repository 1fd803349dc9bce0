"""years partitioned on PostgreSQL: transfer_batch by year, battery_event by occurred_at; a manifest number table

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:40:00.000000

On PostgreSQL both tables become partitioned by range of year (models/partitions.py): a partition for every year
held and for this year and the next two, and a DEFAULT. Their keys take the partition and distribution columns:
transfer_batch (id, year, shipper_id), battery_event (id, occurred_at, battery_id). A partitioned table can hold no
unique number, so manifest_number holds each number (and each shipper's idempotency key) once, written by a trigger
with the manifest; the rows that pointed at transfer_batch.id point at manifest_number.manifest_id, which points at
transfer_batch (id, year, shipper_id). SQLite keeps plain tables and gets the number table, the trigger and the
repointed keys. Every row, id, sequence, index, check and key is kept, both ways.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

from models.partitions import EVENTS, MANIFESTS, SCHEMA, Partitioned, create_default, create_year

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

CST = timezone(timedelta(hours=8))
AHEAD = 2  # the migration's own copy of models.partitions.AHEAD at the time it was written
# The tables whose manifest columns pointed at transfer_batch.id, and the columns.
POINTING = {
    "batch_correction": ("batch_id",),
    "manifest_source": ("manifest_id", "source_id"),
    "manifest_draw": ("manifest_id", "source_id"),
    "manifest_share": ("manifest_id", "origin_id"),
}
NEW_INDEXES = {"ix_batch_number": ("number",), "ix_batch_idempotency": ("shipper_id", "idempotency_key")}
KEYS = {MANIFESTS.table: "id, year, shipper_id", EVENTS.table: "id, occurred_at, battery_id"}
PG_NUMBER_FUNCTION = """
CREATE FUNCTION manifest_number_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A row that moves to another year's partition is inserted there again: its number is already its own.
    INSERT INTO manifest_number (number, manifest_id, year, shipper_id, idempotency_key)
    VALUES (NEW.number, NEW.id, NEW.year, NEW.shipper_id, NEW.idempotency_key)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND AND NOT EXISTS (
        SELECT 1 FROM manifest_number WHERE number = NEW.number AND manifest_id = NEW.id
    ) THEN
        RAISE unique_violation USING MESSAGE = format(
            'manifest number %s or idempotency key %s of shipper %s is taken', NEW.number, NEW.idempotency_key,
            NEW.shipper_id
        );
    END IF;
    RETURN NULL;
END
$$
"""
SQLITE_NUMBER_TRIGGER = """
CREATE TRIGGER tr_batch_number AFTER INSERT ON transfer_batch BEGIN
    INSERT INTO manifest_number (number, manifest_id, year, shipper_id, idempotency_key)
    VALUES (NEW.number, NEW.id, NEW.year, NEW.shipper_id, NEW.idempotency_key);
END
"""
# SQLite: the clauses that change in transfer_batch's definition. Its key stays id (the rowid, which numbers new
# rows); the unique (id, year, shipper_id) is what manifest_number's key points at.
PLAIN_UNIQUES = ("CONSTRAINT uq_batch_idempotency UNIQUE (shipper_id, idempotency_key)", "UNIQUE (number)")
NUMBERED_KEYS = ("UNIQUE (id, year, shipper_id)",)


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rows(sql: str, **params: object) -> list[tuple[str, ...]]:
    return [tuple(str(v) for v in row) for row in op.get_bind().execute(sa.text(sql), params)]


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def _indexes_pg(table: str) -> list[tuple[str, str]]:
    # The indexes that back no constraint, as (name, definition).
    return _rows(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = :t"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.contype IN ('p', 'u'))"
        " ORDER BY i.indexname",
        t=table,
    )


def _constraints_pg(table: str, kinds: str) -> list[tuple[str, str]]:
    return _rows(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t)"
        " AND conparentid = 0 AND position(contype IN :k) > 0 ORDER BY conname",
        t=f"public.{table}",
        k=kinds,
    )


def _rebuild_pg(spec: Partitioned, *, partitioned: bool, keep: dict[str, str], skip_indexes: tuple[str, ...]) -> None:
    """Build the table anew (partitioned or plain) with its rows, ids, sequence, checks, keys and indexes."""
    table, old = spec.table, f"{spec.table}_before_0022"
    indexes = [(name, sql) for name, sql in _indexes_pg(table) if name not in skip_indexes]
    outgoing = _constraints_pg(table, "f")
    (sequence,) = _rows("SELECT pg_get_serial_sequence(:t, 'id')", t=table)[0]
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name, _sql in _indexes_pg(old):
        op.execute(f'DROP INDEX "{name}"')
    for name, _definition in _constraints_pg(old, "pu"):
        op.execute(f'ALTER TABLE {old} DROP CONSTRAINT "{name}"')
    if partitioned:
        op.execute(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
            f" CONSTRAINT {table}_pkey PRIMARY KEY ({KEYS[table]})) PARTITION BY RANGE ({spec.column})"
        )
        held = {int(y) for (y,) in _rows(f"SELECT DISTINCT {spec.year_of()} FROM {old}")}
        this_year = datetime.now(CST).year
        for year in sorted(held | set(range(this_year, this_year + AHEAD + 1))):
            create_year(op.get_bind(), spec, year)
        create_default(op.get_bind(), spec)
    else:
        op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")
    for name, definition in keep.items():
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in outgoing:
        op.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _name, sql in indexes:
        op.execute(sql)
    op.execute(f"ANALYZE {table}")


def _point_pg(target: str) -> None:
    # One statement per constraint (Citus wants each ADD on its own).
    for table, columns in POINTING.items():
        for column in columns:
            name = f"{table}_{column}_fkey"
            op.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"')
            op.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" FOREIGN KEY ({column}) REFERENCES {target}')


def _upgrade_pg() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, columns in POINTING.items():
        for column in columns:
            op.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{table}_{column}_fkey"')
    _rebuild_pg(MANIFESTS, partitioned=True, keep={}, skip_indexes=())
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, MANIFESTS.table, list(columns))
    _rebuild_pg(EVENTS, partitioned=True, keep={}, skip_indexes=())
    _create_numbers()
    op.execute(PG_NUMBER_FUNCTION)
    op.execute(
        "CREATE TRIGGER tr_batch_number AFTER INSERT ON transfer_batch"
        " FOR EACH ROW EXECUTE FUNCTION manifest_number_written()"
    )
    _point_pg("manifest_number (manifest_id)")


def _downgrade_pg() -> None:
    op.execute("DROP TRIGGER tr_batch_number ON transfer_batch")
    op.execute("DROP FUNCTION manifest_number_written()")
    for table, columns in POINTING.items():
        for column in columns:
            op.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{table}_{column}_fkey"')
    op.drop_table("manifest_number")
    plain_uniques = {
        "transfer_batch_pkey": "PRIMARY KEY (id)",
        "transfer_batch_number_key": "UNIQUE (number)",
        "uq_batch_idempotency": "UNIQUE (shipper_id, idempotency_key)",
    }
    _rebuild_pg(MANIFESTS, partitioned=False, keep=plain_uniques, skip_indexes=tuple(NEW_INDEXES))
    _rebuild_pg(EVENTS, partitioned=False, keep={"battery_event_pkey": "PRIMARY KEY (id)"}, skip_indexes=())
    _point_pg("transfer_batch (id)")
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}")


# --- SQLite -----------------------------------------------------------------------------------------------------


def _rebuild_sqlite(
    table: str, *, drop: tuple[str, ...] = (), add: tuple[str, ...] = (), swap: tuple[str, str] | None = None
) -> None:
    """Build a table anew from its own definition, less the clauses dropped, with those added and a text swapped."""
    conn = op.get_bind()
    sql = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar_one()
    indexes = list(
        conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"),
            {"t": table},
        ).scalars()
    )
    # One clause a line, as SQLAlchemy writes them (earlier rebuilds wrote the constraints in no fixed order).
    head, body = sql.split("(", 1)
    clauses = [c.strip() for c in re.split(r",\s*\n", body.rsplit(")", 1)[0]) if c.strip()]
    missing = [c for c in drop if c not in clauses]
    if missing:
        raise RuntimeError(f"{table}: {missing} not in its definition")
    clauses = [c for c in clauses if c not in drop] + list(add)
    if swap is not None:
        if not any(swap[0] in c for c in clauses):
            raise RuntimeError(f"{table}: {swap[0]!r} not in its definition")
        clauses = [c.replace(*swap) for c in clauses]
    # Dropped and built again under its own name, so that the other tables' keys name it still (a rename would
    # rewrite them). The keys into it are deferred: the drop leaves them pointing at nothing until the rows are back.
    op.execute(f"CREATE TEMP TABLE {table}__before_0022 AS SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(head + "(\n\t" + ", \n\t".join(clauses) + "\n)")
    op.execute(f"INSERT INTO {table} SELECT * FROM {table}__before_0022")
    op.execute(f"DROP TABLE {table}__before_0022")
    for index in indexes:
        op.execute(index)


def _defer_keys_sqlite() -> None:
    # The keys into a rebuilt table are checked at commit. The driver opens a transaction only at a write, and the
    # pragma lasts only as long as the transaction: a write that changes nothing opens it first.
    op.execute("UPDATE alembic_version SET version_num = version_num")
    op.execute("PRAGMA defer_foreign_keys = ON")


def _upgrade_sqlite() -> None:
    _defer_keys_sqlite()
    _rebuild_sqlite(MANIFESTS.table, drop=PLAIN_UNIQUES, add=NUMBERED_KEYS)
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, MANIFESTS.table, list(columns))
    _create_numbers()
    for table in POINTING:
        _rebuild_sqlite(table, swap=("REFERENCES transfer_batch (id)", "REFERENCES manifest_number (manifest_id)"))
    op.execute(SQLITE_NUMBER_TRIGGER)


def _downgrade_sqlite() -> None:
    _defer_keys_sqlite()
    op.execute("DROP TRIGGER tr_batch_number")
    for table in POINTING:
        _rebuild_sqlite(table, swap=("REFERENCES manifest_number (manifest_id)", "REFERENCES transfer_batch (id)"))
    op.drop_table("manifest_number")
    for name in NEW_INDEXES:
        op.drop_index(name, MANIFESTS.table)
    _rebuild_sqlite(MANIFESTS.table, drop=NUMBERED_KEYS, add=PLAIN_UNIQUES)


# --- both -------------------------------------------------------------------------------------------------------


def _create_numbers() -> None:
    op.create_table(
        "manifest_number",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("shipper_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("manifest_id"),
        sa.UniqueConstraint("shipper_id", "idempotency_key", name="uq_manifest_number_idempotency"),
        sa.ForeignKeyConstraint(
            ["manifest_id", "year", "shipper_id"],
            ["transfer_batch.id", "transfer_batch.year", "transfer_batch.shipper_id"],
            name="fk_manifest_number_batch",
            onupdate="CASCADE",
        ),
    )
    op.execute(
        "INSERT INTO manifest_number (number, manifest_id, year, shipper_id, idempotency_key)"
        " SELECT number, id, year, shipper_id, idempotency_key FROM transfer_batch"
    )


def upgrade() -> None:
    if _pg():
        _upgrade_pg()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if _pg():
        _downgrade_pg()
    else:
        _downgrade_sqlite()
