"""Keeping the years' partitions ahead (PostgreSQL): for the command, the server's start-up and the upgrade."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session

from flows.kernel.clock import CST
from models import partitions
from models.partitions import Created, Partition


def ensure(
    *,
    session: Session,
    now: datetime,
    ahead: int = partitions.AHEAD,
    move: bool = True,
    lock_timeout_ms: int = 0,
    years: Iterable[int] = (),
) -> list[Created]:
    """Create the partitions missing: this Beijing year and `ahead` more, the years held in DEFAULT; caller commits.

    `lock_timeout_ms` bounds the wait for the tables' locks (0: wait), so that a server starting beside busy
    writers gives up rather than stalls; the lock is then not taken and nothing is created. Without `move`, a year
    whose rows wait in DEFAULT is left for the command (see models/partitions.py).
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return []
    if lock_timeout_ms:
        conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    return partitions.ensure(conn, now.astimezone(CST).year, ahead, move=move, years=years)


def held(*, session: Session) -> dict[str, set[int]]:
    """The years of the rows each table's DEFAULT holds (a year with rows there wants `partitions ensure`)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return {}
    return {s.table: years for s in partitions.TABLES if (years := partitions.held_years(conn, s))}


def listing(*, session: Session) -> list[Partition]:
    """Every partition of the partitioned tables (none on SQLite)."""
    return partitions.listing(session.connection())
