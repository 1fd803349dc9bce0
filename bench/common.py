"""Shared pieces of the benchmarks: throwaway databases and synthetic province-scale data."""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, make_url, select, text
from sqlmodel import Session, col

from app.setup import upgrade_database
from flows.kernel.uscc import make_uscc
from flows.waste import chains, numbers
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES
from models import Declaration, Enterprise, Licence, Manifest, ManifestSource, Region
from models.db import make_engine
from models.enums import LicenceActivity, ManifestStatus, RegionLevel, Route

PG_ADMIN = os.environ.get("CIRCUFLOW_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CATEGORIES = [*SICHUAN_TARGET_CATEGORIES, "SW05"]
UTILISATION_ROUTES = [Route.cement_admixture, Route.building_materials, Route.road_base, Route.backfill]


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[Engine]:
    """A migrated database with the boundaries, dropped afterwards."""
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        upgrade_database(engine)
        try:
            yield engine
        finally:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"circuflow_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name)
    engine = make_engine(url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    upgrade_database(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Province:
    """The synthetic data that was inserted, kept for the DuckDB comparison."""

    enterprises: list[dict[str, Any]]
    declarations: list[dict[str, Any]]
    manifests: list[dict[str, Any]]
    licences: list[dict[str, Any]]
    sources: list[dict[str, Any]]


def _chunks(rows: list[dict[str, Any]], size: int = 20_000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def fill_province(
    engine: Engine,
    *,
    enterprises: int,
    declarations: int,
    manifests: int,
    through: float = 0.0,
    seed: int = 7,
    log: Callable[[str], None],
) -> Province:
    """Insert enterprises spread over the real counties, their declarations, utilisers' licences and manifests.

    `through` is the share of first manifests delivered to an intermediary (one enterprise in twenty collects and one
    in fifty pre-treats), which forwards lots of four pro rata to a utiliser, half of them by way of a pre-treatment
    plant: so those pass one or two intermediaries. Forwardings count within `manifests`.
    """
    rng = random.Random(seed)
    with Session(engine) as session:
        counties = [
            (adcode, parent, geom.representative_point())
            for adcode, parent, geom in session.execute(
                select(col(Region.adcode), col(Region.parent_adcode), col(Region.geom)).where(
                    col(Region.level) == RegionLevel.county
                )
            )
        ]
    ents: list[dict[str, Any]] = []
    for i in range(1, enterprises + 1):
        county, prefecture, point = counties[rng.randrange(len(counties))]
        ents.append(
            {
                "id": i,
                "uscc": make_uscc(f"91{county}{i:08d}"),
                "name_zh": f"基准企业{i}",
                "lon": point.x,
                "lat": point.y,
                "province_adcode": "510000",
                "prefecture_adcode": prefecture,
                "county_adcode": county,
                "location_overridden": False,
            }
        )
    utilisers = list(range(1, enterprises + 1, 10))  # one in ten receives and utilises
    collectors = list(range(2, enterprises + 1, 20))
    plants = list(range(3, enterprises + 1, 50))
    licences = [
        {
            "enterprise_id": u,
            "category_code": c,
            "activity": LicenceActivity.utilisation.value,
            "capacity_t": 2_000_000.0,
            "licence_no": f"L{u}-{c}",
            "valid_from": datetime(2019, 1, 1).date(),
        }
        for u in utilisers
        for c in CATEGORIES
    ]
    decls: list[dict[str, Any]] = []
    seen: set[tuple[int, str, int]] = set()
    while len(decls) < declarations:
        key = (rng.randrange(1, enterprises + 1), rng.choice(CATEGORIES), rng.randrange(2020, 2025))
        if key in seen:
            continue
        seen.add(key)
        # Weights are whole kilograms (models/quantity.py): three decimals in tonnes.
        generated = round(rng.lognormvariate(8, 1.5), 3)
        utilised = round(generated * rng.uniform(0.4, 0.95), 3)
        prior = round(utilised * rng.uniform(0, 0.1), 3)
        decls.append(
            {
                "enterprise_id": key[0],
                "category_code": key[1],
                "year": key[2],
                "generated_t": generated,
                "utilised_t": utilised,
                "utilised_prior_t": prior,
                "disposed_t": 0.0,
                "disposed_prior_t": 0.0,
                "stored_t": round(generated - (utilised - prior), 3),
                "dumped_t": 0.0,
            }
        )
    licences += [
        {
            "enterprise_id": e,
            "category_code": c,
            "activity": LicenceActivity.collection.value,
            "capacity_t": 2_000_000.0,
            "licence_no": f"C{e}-{c}",
            "valid_from": datetime(2019, 1, 1).date(),
        }
        for e in sorted({*collectors, *plants} - set(utilisers))
        for c in CATEGORIES
    ]
    start = datetime(2020, 1, 1, tzinfo=UTC)
    batches: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []

    def add(shipper: int, receiver: int, category: str, route: str, sent: datetime, weight: float) -> dict[str, Any]:
        row = {
            "id": len(batches) + 1,
            "number": f"B{len(batches) + 1:09d}",
            "shipper_id": shipper,
            "receiver_id": receiver,
            "category_code": category,
            "route": route,
            "year": sent.year,
            "status": ManifestStatus.received.value,
            "weight_dispatched_t": weight,
            "weight_received_t": round(weight * rng.uniform(0.98, 1.01), 3),
            "dispatched_at": sent,
            "received_at": sent + timedelta(hours=6),
            "created_at": sent,
        }
        batches.append(row)
        return row

    def forward(lots: dict[tuple[int, str], list[dict[str, Any]]], onward: float) -> dict[tuple[int, str], list[Any]]:
        """Each intermediary sends its lots on four at a time, pro rata; a share of them to a pre-treatment plant."""
        held: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for (at, category), rows in lots.items():
            for first in range(0, len(rows) - 3, 4):
                group = rows[first : first + 4]
                sent = max(r["received_at"] for r in group) + timedelta(days=1)
                weight = round(sum(r["weight_received_t"] for r in group) * 0.95, 3)
                if rng.random() < onward:
                    plant = plants[rng.randrange(len(plants))]
                    row = add(at, plant if plant != at else plants[0], category, Route.transfer.value, sent, weight)
                    held.setdefault((row["receiver_id"], category), []).append(row)
                else:
                    row = add(at, rng.choice(utilisers), category, rng.choice(UTILISATION_ROUTES).value, sent, weight)
                sources.extend({"manifest_id": row["id"], "source_id": r["id"], "weight_t": None} for r in group)
        return held

    # First manifests, then the forwardings: about 1.08 manifests for each first one at a 30% share through.
    firsts = round(manifests / (1 + through * (0.25 + 0.5 * 0.25 * 0.25)))
    to_collectors: dict[tuple[int, str], list[dict[str, Any]]] = {}
    middle = {*collectors, *plants}
    for _ in range(firsts):
        shipper = rng.randrange(1, enterprises + 1)
        while shipper in middle:  # intermediaries send on what they received, nothing of their own
            shipper = rng.randrange(1, enterprises + 1)
        category = rng.choice(CATEGORIES)
        sent = start + timedelta(minutes=rng.randrange(5 * 365 * 24 * 60))
        weight = round(rng.uniform(5, 60), 3)
        if rng.random() < through:
            collector = rng.choice(collectors)
            row = add(shipper, collector if collector != shipper else collectors[0], category, "storage", sent, weight)
            to_collectors.setdefault((row["receiver_id"], category), []).append(row)
            continue
        receiver = rng.choice(utilisers)
        if receiver == shipper:
            receiver = utilisers[(utilisers.index(receiver) + 1) % len(utilisers)]
        add(shipper, receiver, category, rng.choice(UTILISATION_ROUTES).value, sent, weight)
    for lots in to_collectors.values():
        lots.sort(key=lambda r: r["received_at"])
    at_plants = forward(to_collectors, 0.5)
    for lots in at_plants.values():
        lots.sort(key=lambda r: r["received_at"])
    forward(at_plants, 0.0)
    began = time.perf_counter()
    with engine.begin() as conn:
        for model, rows in (
            (Enterprise, ents),
            (Licence, licences),
            (Declaration, decls),
            (Manifest, batches),
            (ManifestSource, sources),
        ):
            for chunk in _chunks(rows):
                conn.execute(insert(model), chunk)
            if model is Manifest:  # in bulk, past the ORM's hook: the number rows are written here
                numbers.record(conn, (int(str(row["id"])) for row in rows))
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('enterprise_id_seq', (SELECT max(id) FROM enterprise))"))
            conn.execute(text("SELECT setval('transfer_batch_id_seq', (SELECT max(id) FROM transfer_batch))"))
    # Inserted in bulk: every manifest's share, along its chain, is computed here rather than on each flush.
    allocating = time.perf_counter()
    with Session(engine) as session:
        chains.reallocate_all(session)
        session.commit()
    allocated = time.perf_counter() - allocating
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    if engine.dialect.name == "sqlite":
        # Fold the write-ahead log into the file, as a database that has been running a while would be.
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    forwarded = len({s["manifest_id"] for s in sources})
    log(
        f"  loaded {len(ents):,} enterprises, {len(decls):,} declarations, {len(batches):,} manifests "
        f"({forwarded:,} forwardings naming {len(sources):,} lots) in {time.perf_counter() - began:.1f} s, "
        f"of which allocation along the chains {allocated:.1f} s"
    )
    return Province(ents, decls, batches, licences, sources)


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """The median wall time of several runs, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result
