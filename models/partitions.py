"""Years partitioned on PostgreSQL: transfer_batch by its year, battery_event by the Beijing year of occurred_at.

The partitions live in a schema of their own (`partitions`), so that the tables the application names stay the
only ones in its schema. Each year has a partition, and a DEFAULT partition takes a row of a year that has none yet,
so that an insert never fails; `ensure` creates the years ahead and moves such rows into their year's partition.
SQLite keeps plain tables: every function here is for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, text

SCHEMA = "partitions"
# One key for every process that creates partitions (servers at start-up, the command, the migration).
ENSURE_LOCK = 0x0C1F_0022
AHEAD = 2


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by year: on a year column, or on the Beijing year of a time."""

    table: str
    column: str
    by_time: bool

    def bound(self, year: int) -> str:
        """The SQL literal of the start of a year: the year itself, or its first moment in Beijing."""
        return f"'{year:04d}-01-01 00:00:00+08'" if self.by_time else str(year)

    def in_year(self, year: int) -> str:
        """A condition on the partition column: the row is of that year."""
        return f"{self.column} >= {self.bound(year)} AND {self.column} < {self.bound(year + 1)}"

    def year_of(self) -> str:
        """The SQL expression of a row's year."""
        if self.by_time:
            return f"CAST(EXTRACT(YEAR FROM {self.column} AT TIME ZONE 'Asia/Shanghai') AS INTEGER)"
        return self.column

    def name(self, year: int) -> str:
        """The partition of a year, schema-qualified."""
        return f"{SCHEMA}.{self.table}_{year:04d}"

    @property
    def default(self) -> str:
        """The DEFAULT partition, schema-qualified."""
        return f"{SCHEMA}.{self.table}_default"


MANIFESTS = Partitioned("transfer_batch", "year", by_time=False)
EVENTS = Partitioned("battery_event", "occurred_at", by_time=True)
TABLES = (MANIFESTS, EVENTS)


@dataclass(frozen=True)
class Partition:
    """One partition: its table, name, year (None for DEFAULT) and the rows it holds (an estimate for a year)."""

    table: str
    name: str
    year: int | None
    rows: int


def is_partitioned(conn: Connection, table: str) -> bool:
    """Whether the table is partitioned (on PostgreSQL, once migration 0022 has run)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(:t)"), {"t": f"public.{table}"}
    ).scalar()
    return kind == "p"


def _years(conn: Connection, spec: Partitioned) -> set[int]:
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": f"public.{spec.table}"},
    ).scalars()
    prefix = f"{spec.table}_"
    return {int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit()}


def _has_default(conn: Connection, spec: Partitioned) -> bool:
    return bool(conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": spec.default}).scalar_one())


def create_default(conn: Connection, spec: Partitioned) -> None:
    """Create the DEFAULT partition of a table."""
    conn.execute(text(f"CREATE TABLE {spec.default} PARTITION OF {spec.table} DEFAULT"))


def _referring(conn: Connection, spec: Partitioned) -> list[tuple[str, str, str]]:
    # Foreign keys into the table, as (referring table, name, definition): PostgreSQL checks them against the
    # partition a row leaves, so they are lifted while rows move from DEFAULT into their year's partition.
    rows = conn.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = to_regclass(:t) AND conparentid = 0"
        ),
        {"t": f"public.{spec.table}"},
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def own_checks(conn: Connection, table: str) -> list[tuple[str, str]]:
    """The CHECK constraints defined on the table itself (not inherited), as (name, definition)."""
    rows = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = to_regclass(:t) AND contype = 'c' AND conislocal ORDER BY conname"
        ),
        {"t": table},
    )
    return [(str(a), str(b)) for a, b in rows]


def _citus_checks(conn: Connection, spec: Partitioned) -> list[tuple[str, str]]:
    """The table's own CHECK constraints when Citus holds it in its metadata, else none."""
    if conn.execute(text("SELECT to_regclass('pg_catalog.pg_dist_partition')")).scalar() is None:
        return []
    held = conn.execute(
        text("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = to_regclass(:t)"), {"t": spec.table}
    ).scalar_one()
    return own_checks(conn, spec.table) if held else []


def create_year(conn: Connection, spec: Partitioned, year: int) -> int:
    """Create a year's partition; rows of that year held in DEFAULT move into it. Returns how many moved."""
    # Citus 13.2 refuses a new partition of a table in its metadata whose checks the partition would inherit
    # ("child table is missing constraint"): the checks leave for the moment and come back, the partition with them.
    checks = _citus_checks(conn, spec)
    for name, _definition in checks:
        conn.execute(text(f'ALTER TABLE {spec.table} DROP CONSTRAINT "{name}"'))
    moved = _create_year(conn, spec, year)
    for name, definition in checks:
        conn.execute(text(f'ALTER TABLE {spec.table} ADD CONSTRAINT "{name}" {definition}'))
    return moved


def _create_year(conn: Connection, spec: Partitioned, year: int) -> int:
    bounds = f"FROM ({spec.bound(year)}) TO ({spec.bound(year + 1)})"
    held = 0
    if _has_default(conn, spec):
        held = conn.execute(text(f"SELECT COUNT(*) FROM {spec.default} WHERE {spec.in_year(year)}")).scalar_one()
    if not held:
        conn.execute(text(f"CREATE TABLE {spec.name(year)} PARTITION OF {spec.table} FOR VALUES {bounds}"))
        return 0
    # PostgreSQL refuses a partition while DEFAULT holds rows of its range: the rows go into a table of the same
    # shape, leave DEFAULT, and the table is attached (which builds its indexes, keys and triggers). Nothing is
    # inserted through the parent, so the rows keep their ids and fire no insert trigger a second time.
    referring = _referring(conn, spec)
    for table, name, _definition in referring:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    conn.execute(text(f"CREATE TABLE {spec.name(year)} (LIKE {spec.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    conn.execute(text(f"INSERT INTO {spec.name(year)} SELECT * FROM {spec.default} WHERE {spec.in_year(year)}"))
    conn.execute(text(f"DELETE FROM {spec.default} WHERE {spec.in_year(year)}"))
    conn.execute(text(f"ALTER TABLE {spec.table} ATTACH PARTITION {spec.name(year)} FOR VALUES {bounds}"))
    for table, name, definition in referring:
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    return int(held)


def held_years(conn: Connection, spec: Partitioned) -> set[int]:
    """The years of the rows held in DEFAULT."""
    if not _has_default(conn, spec):
        return set()
    return {int(y) for y in conn.execute(text(f"SELECT DISTINCT {spec.year_of()} FROM {spec.default}")).scalars()}


@dataclass(frozen=True)
class Created:
    """A partition created by `ensure`, and the rows that moved into it from DEFAULT."""

    table: str
    year: int
    moved: int


def ensure(
    conn: Connection, this_year: int, ahead: int = AHEAD, *, move: bool = True, years: Iterable[int] = ()
) -> list[Created]:
    """Create the partitions missing (DEFAULT, the years held in DEFAULT, this year and `ahead` more, and `years`).

    One process at a time: a transaction-scoped advisory lock queues the others, which then find the partitions
    made. Without `move`, a year whose rows DEFAULT holds is left (moving them locks the table while it copies
    them): a server's start-up leaves them to the command. The caller commits. Nothing happens on SQLite or on a
    table not partitioned.
    """
    if conn.dialect.name != "postgresql":
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ENSURE_LOCK})
    created: list[Created] = []
    for spec in TABLES:
        if not is_partitioned(conn, spec.table):
            continue
        if not _has_default(conn, spec):
            create_default(conn, spec)
        held = held_years(conn, spec)
        wanted = set(range(this_year, this_year + ahead + 1)) | held | set(years)
        for year in sorted(wanted - _years(conn, spec)):
            if move or year not in held:
                created.append(Created(spec.table, year, create_year(conn, spec, year)))
    return created


def listing(conn: Connection) -> list[Partition]:
    """Every partition of the partitioned tables; DEFAULT's rows counted, a year's estimated by the statistics."""
    if conn.dialect.name != "postgresql":
        return []
    found: list[Partition] = []
    for spec in TABLES:
        if not is_partitioned(conn, spec.table):
            continue
        for year in sorted(_years(conn, spec)):
            estimate = conn.execute(
                text("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(:p)"),
                {"p": spec.name(year)},
            ).scalar_one()
            found.append(Partition(spec.table, spec.name(year), year, int(estimate)))
        if _has_default(conn, spec):
            held = conn.execute(text(f"SELECT COUNT(*) FROM {spec.default}")).scalar_one()
            found.append(Partition(spec.table, spec.default, None, int(held)))
    return found
