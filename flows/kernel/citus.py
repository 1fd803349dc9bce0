"""Spreading the schema over a Citus cluster: which tables are reference tables, which are distributed and by what.

The key is the enterprise: a manifest lives with its shipper, a declaration with its enterprise, co-located, so that
grouping by region pushes down through the enterprise reference table and an enterprise's own queries hit one shard.
Batteries and their events live by battery. The small tables every query joins are reference tables (a copy on every
node); the audit log stays on the coordinator, where its triggers keep it append-only.

`plan` reads the database's own catalogue and answers the statements in the order Citus needs them, with the tables
that cannot be distributed yet and why; `distribute` runs them. Foreign keys touching a distributed table are dropped
first and added back after (Citus cannot distribute a table that a local table references, and a local table that
references a reference table joins the coordinator's metadata and can then not be co-located), one per statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from models import partitions

# In foreign-key order: a table comes after those it references.
REFERENCE_TABLES: tuple[str, ...] = (
    "region",
    "waste_category",
    "park",
    "enterprise",
    "enterprise_role",
    "target",
    "target_category",
    "user_account",
    "licence",
    "licence_revision",
    "whitelist_entry",
    "period_lock",
    "login_session",
    "api_token",
    "login_failure",
    "number_counter",
    "notice",
    "notice_preference",
    "attachment",
    "correction_request",
    "correction_ask",
    "correction_attachment",
    "rate_revision",
    "flag_work",
    "flag_entry",
)


@dataclass(frozen=True)
class Distributed:
    """A table spread over the shards by one column, in the shard group of another table (or a group of its own)."""

    table: str
    column: str
    colocate_with: str  # a table, or 'none' for a group of its own


# In order: a table comes after the one it is co-located with.
DISTRIBUTED_TABLES: tuple[Distributed, ...] = (
    Distributed("declaration", "enterprise_id", "none"),
    Distributed("transfer_batch", "shipper_id", "declaration"),
    Distributed("batch_correction", "shipper_id", "transfer_batch"),
    Distributed("recovery_report", "recycler_id", "declaration"),
    Distributed("battery", "id", "none"),
    Distributed("battery_event", "battery_id", "battery"),
    Distributed("battery_code", "code", "none"),
)

# Foreign keys that cannot hold between shards and are left out on Citus, with who checks instead.
NOT_KEPT: dict[str, str] = {
    "battery_parent_id_fkey": "a child and its parent sit on different shards: the battery writer checks the parent"
    " under a row lock in the registering transaction (batteries are never deleted)",
    "recovery_report_battery_id_fkey": "a report lives with its recycler, the battery by its own id: the report"
    " writer checks the battery",
    "fk_manifest_number_batch": "numbers stay on the coordinator, manifests live with their shipper: the manifest"
    " writers write the number row with the manifest, in its transaction (flows/waste/numbers.py)",
    "batch_correction_batch_id_fkey": "a correction lives with its shipper, the number table on the coordinator: the"
    " correction writer reads the manifest first, under a row lock",
}

LOCAL_TABLES: tuple[str, ...] = ("audit_log", "audit_head")


@dataclass
class Plan:
    """The statements in order, and the tables left on the coordinator with the reason."""

    statements: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    distributed: list[Distributed] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]
    definition: str


def _foreign_keys(conn: Connection) -> list[_ForeignKey]:
    rows = conn.execute(
        text(
            "SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,"
            " ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
            "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
            " ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
            "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),"
            " pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace"
            " WHERE c.contype = 'f' AND s.nspname = current_schema() ORDER BY 2, 1"
        )
    )
    return [_ForeignKey(r[0], r[1], tuple(r[3]), r[2], tuple(r[4]), r[5]) for r in rows]


def _unique_keys(conn: Connection, table: str) -> dict[str, tuple[str, ...]]:
    """Primary keys, unique constraints and unique indexes of a table, by name, with their columns."""
    rows = conn.execute(
        text(
            "SELECT i.indexrelid::regclass::text,"
            " ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k(n)"
            "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n)"
            " FROM pg_index i WHERE i.indisunique AND i.indrelid = to_regclass(:t)"
        ),
        {"t": table},
    )
    return {r[0]: tuple(r[1]) for r in rows}


def _tables(conn: Connection) -> set[str]:
    rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    return {r[0] for r in rows}


def _fk_fits(
    fk: _ForeignKey, reference: Sequence[str], distributed: dict[str, Distributed], groups: dict[str, str]
) -> bool:
    """Whether Citus can hold this foreign key between the tables as they will be."""
    if fk.name in NOT_KEPT:
        return False
    if fk.referenced in reference:  # to a reference table: from anything
        return True
    source, target = distributed.get(fk.table), distributed.get(fk.referenced)
    if source is None or target is None:  # a reference or local table cannot point at a distributed one, nor back
        return False
    if groups[source.table] != groups[target.table] or source.column not in fk.columns:
        return False
    return fk.referenced_columns[fk.columns.index(source.column)] == target.column


def plan(conn: Connection) -> Plan:
    """The statements that distribute this database, in order, and what must stay on the coordinator and why."""
    out = Plan()
    present = _tables(conn)
    out.reference = [t for t in REFERENCE_TABLES if t in present]
    candidates = {d.table: d for d in DISTRIBUTED_TABLES if d.table in present}
    for d in candidates.values():
        outside = [name for name, cols in _unique_keys(conn, d.table).items() if d.column not in cols]
        if outside:
            out.blocked[d.table] = f"unique keys without {d.column}: {', '.join(sorted(outside))}"
    fks = _foreign_keys(conn)
    # A table stays local when it is blocked, co-located with a blocked table, or tied by a foreign key (that must
    # be kept) to a table that stays local; repeat until nothing moves.
    moved = True
    while moved:
        moved = False
        for d in candidates.values():
            if d.table in out.blocked:
                continue
            if d.colocate_with in out.blocked:
                out.blocked[d.table] = f"co-located with {d.colocate_with}, which stays on the coordinator"
                moved = True
                continue
            for fk in fks:
                if fk.name in NOT_KEPT or fk.table == fk.referenced:
                    continue
                other = fk.referenced if fk.table == d.table else fk.table if fk.referenced == d.table else None
                if other is None or other in out.reference:
                    continue
                if other not in candidates or other in out.blocked:
                    out.blocked[d.table] = f"{fk.name} ties it to {other}, which stays on the coordinator"
                    moved = True
                    break
    out.distributed = [d for d in candidates.values() if d.table not in out.blocked]
    distributed = {d.table: d for d in out.distributed}
    groups: dict[str, str] = {}
    for d in out.distributed:
        groups[d.table] = d.table if d.colocate_with == "none" else groups[d.colocate_with]
    touching = [fk for fk in fks if fk.table in groups or fk.referenced in groups]
    # Citus 13.2 takes a local table tied to a reference table into its metadata, and then refuses a partitioned one
    # whose partitions carry CHECK constraints ("child table is missing constraint"): those checks are dropped
    # before and added back after, when the table is in the metadata (the partitions take them again).
    left = sorted(s.table for s in partitions.TABLES if partitions.is_partitioned(conn, s.table))
    checks = [
        (table, name, definition)
        for table in left
        if table not in groups and table not in out.reference
        for name, definition in partitions.own_checks(conn, table)
    ]
    for table, name, _definition in checks:
        out.statements.append(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for fk in touching:
        out.statements.append(f'ALTER TABLE "{fk.table}" DROP CONSTRAINT "{fk.name}"')
    out.statements += [f"SELECT create_reference_table('{t}')" for t in out.reference]
    for d in out.distributed:
        out.statements.append(
            f"SELECT create_distributed_table('{d.table}', '{d.column}', colocate_with => '{d.colocate_with}')"
        )
    for table, name, definition in checks:
        out.statements.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for fk in touching:
        if _fk_fits(fk, out.reference, distributed, groups):
            out.statements.append(f'ALTER TABLE "{fk.table}" ADD CONSTRAINT "{fk.name}" {fk.definition}')
        else:
            out.dropped[fk.name] = NOT_KEPT.get(fk.name, f"{fk.table} -> {fk.referenced} is not co-located")
    return out


def is_citus(conn: Connection) -> bool:
    """Whether the database runs the citus extension."""
    return bool(conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'citus'")).scalar())


def distribute(conn: Connection, *, progress: Callable[[str], None] | None = None) -> Plan:
    """Run the plan's statements on a Citus coordinator, in one transaction (the caller commits)."""
    steps = plan(conn)
    # Reference tables and co-located shards are created over several connections: sequential mode keeps a
    # transaction that already wrote through one of them able to go on.
    conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    for statement in steps.statements:
        if progress:
            progress(statement)
        conn.execute(text(statement))
    return steps
