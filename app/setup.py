"""Bringing a database to a usable state: schema, boundaries and reference data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

import migrations
from flows.kernel import partitions
from flows.waste.reference import seed_categories, seed_targets
from maps.regions import load_regions

log = logging.getLogger("circuflow")


@dataclass(frozen=True)
class UpgradeReport:
    regions_added: int
    categories_added: int
    targets_added: int


def upgrade_database(engine: Engine, *, progress: Callable[[int, int], None] | None = None) -> UpgradeReport:
    """Run the migrations, then load the boundaries and reference data that are missing."""
    migrations.upgrade(engine)
    with Session(engine) as session:
        # The years' partitions (PostgreSQL): a database upgraded in a later year than it was made gets its years.
        partitions.ensure(session=session, now=datetime.now(UTC))
        regions = load_regions(session=session, progress=progress)
        categories = seed_categories(session=session)
        targets = seed_targets(session=session)
        session.commit()
    return UpgradeReport(regions, categories, targets)


START_LOCK_TIMEOUT_MS = 2000


def ensure_partitions_at_start(engine: Engine) -> None:
    """Create the coming years' partitions as a server starts (PostgreSQL); a busy database is left for later.

    Several workers start at once: the advisory lock in models/partitions.py lets one create them and the others
    find them made. A worker that waits longer than START_LOCK_TIMEOUT_MS starts without. Rows already in DEFAULT
    are not moved here (that copies them under lock): the log says to run `circuflow partitions ensure`.
    """
    if engine.dialect.name != "postgresql":
        return
    try:
        with Session(engine) as session:
            now = datetime.now(UTC)
            created = partitions.ensure(session=session, now=now, move=False, lock_timeout_ms=START_LOCK_TIMEOUT_MS)
            session.commit()
            waiting = partitions.held(session=session)
    except DBAPIError as exc:
        log.warning("the years' partitions were not checked at start-up: %s", exc.orig)
        return
    for c in created:
        log.info("partition of %s for %s created", c.table, c.year)
    for table, years in waiting.items():
        log.warning("%s: rows of %s wait in DEFAULT; run `circuflow partitions ensure`", table, sorted(years))
