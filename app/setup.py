"""Bringing a database to a usable state: schema, boundaries and reference data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

import migrations
from flows.waste.reference import seed_categories, seed_targets
from maps.regions import load_regions


@dataclass(frozen=True)
class UpgradeReport:
    regions_added: int
    categories_added: int
    targets_added: int


def upgrade_database(engine: Engine, *, progress: Callable[[int, int], None] | None = None) -> UpgradeReport:
    """Run the migrations, then load the boundaries and reference data that are missing."""
    migrations.upgrade(engine)
    with Session(engine) as session:
        regions = load_regions(session=session, progress=progress)
        categories = seed_categories(session=session)
        targets = seed_targets(session=session)
        session.commit()
    return UpgradeReport(regions, categories, targets)
