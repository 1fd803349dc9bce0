"""Keeping the years' partitions ahead (PostgreSQL): for the command, the server's start-up and the upgrade."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session

from flows.kernel.clock import CST
from models import partitions
from models.partitions import Created, Partition


def ensure(
    *, session: Session, now: datetime, ahead: int = partitions.AHEAD, lock_timeout_ms: int = 0
) -> list[Created]:
    """Create the partitions missing: this Beijing year and `ahead` more, the years held in DEFAULT; caller commits.

    `lock_timeout_ms` bounds the wait for the tables' locks (0: wait), so that a server starting beside busy
    writers gives up rather than stalls; the lock is then not taken and nothing is created.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return []
    if lock_timeout_ms:
        conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    return partitions.ensure(conn, now.astimezone(CST).year, ahead)


def listing(*, session: Session) -> list[Partition]:
    """Every partition of the partitioned tables (none on SQLite)."""
    return partitions.listing(session.connection())
