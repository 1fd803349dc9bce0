"""The Sichuan demo: counts, validity, determinism, the planted faults, and the refusal to load twice.

The demo is loaded once per module into a fresh SQLite file (it takes a few seconds), and, when
CIRCUFLOW_TEST_POSTGRES_URL is set, once more into a throwaway PostgreSQL + PostGIS database.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlmodel import Session, col, select

from app.setup import upgrade_database
from flows.battery.code import parse_battery_code
from flows.demo.load import DEMO_NOW, DemoSummary, load_demo
from flows.kernel.errors import Conflict
from flows.kernel.principal import system_principal
from flows.kernel.uscc import validate_uscc
from flows.waste.flags import list_flags
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES
from maps.locate import locate_many
from models import (
    Battery,
    BatteryEvent,
    Declaration,
    Enterprise,
    EnterpriseRoleLink,
    Licence,
    Manifest,
    ManifestShare,
    ManifestSource,
    Park,
    RecoveryReport,
    Region,
    WhitelistEntry,
)
from models.db import make_engine
from models.enums import BatteryEventType, BatteryLevel, BatteryState, EnterpriseRole, ManifestStatus

# The state machine of BATTERY.md, read state by state; `transferred` changes custody, never state.
NEXT: dict[str | None, set[str]] = {
    None: {"produced"},
    "produced": {"installed"},
    "installed": {"retired"},
    "retired": {"collected", "tested", "dismantled"},
    "collected": {"tested", "dismantled"},
    "tested": {"repurposed"},
    "repurposed": {"in_cascade_use"},
    "in_cascade_use": {"retired"},
    "dismantled": {"recovered"},
    "recovered": set(),
}


@dataclass
class Loaded:
    engine: Engine
    summary: DemoSummary
    progress: list[tuple[str, int, int]]


def _load(url: str, seed: int = 2024) -> Loaded:
    engine = make_engine(url)
    upgrade_database(engine)
    calls: list[tuple[str, int, int]] = []
    with Session(engine) as session:
        summary = load_demo(session=session, seed=seed, progress=lambda *a: calls.append(a))
        session.commit()
    return Loaded(engine, summary, calls)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    path: Path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    loaded = _load(f"sqlite:///{path}")
    yield loaded
    loaded.engine.dispose()


@pytest.fixture
def session(demo: Loaded) -> Iterator[Session]:
    with Session(demo.engine) as s:
        yield s


def _naive_utc(value: Any) -> Any:
    # SQLite hands back naive UTC, PostgreSQL aware datetimes: compare them on one footing.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _fingerprint(session: Session) -> dict[str, Any]:
    """Sorted tuples of enterprises and parks, and hashes of the big tables, keyed by natural keys (no ids)."""
    uscc = dict(session.execute(text("SELECT id, uscc FROM enterprise")).all())
    parks = dict(session.execute(text("SELECT id, name_zh FROM park")).all())
    enterprises = sorted(
        (e.uscc, e.name_zh, e.name_en, e.lon, e.lat, e.county_adcode, parks.get(e.park_id or 0))
        for e in session.exec(select(Enterprise)).all()
    )
    batches = hashlib.sha256()
    for b in session.exec(select(Manifest).order_by(col(Manifest.number))).all():
        row = (
            b.number,
            uscc[b.shipper_id],
            uscc[b.receiver_id],
            uscc.get(b.carrier_id or 0),
            b.category_code,
            b.route,
            b.status,
            b.weight_dispatched_t,
            b.weight_received_t,
            _naive_utc(b.dispatched_at),
            _naive_utc(b.received_at),
        )
        batches.update(repr(row).encode())
    batteries = hashlib.sha256()
    for bat in session.exec(select(Battery).order_by(Battery.code)).all():
        batteries.update(repr((bat.code, bat.original_code, bat.state, uscc.get(bat.holder_id or 0))).encode())
    declarations = sorted(
        (uscc[d.enterprise_id], d.category_code, d.year, d.generated_t, d.utilised_t, d.stored_t)
        for d in session.exec(select(Declaration)).all()
    )
    events = session.execute(text("SELECT count(*) FROM battery_event")).scalar()
    return {
        "enterprises": enterprises,
        "batches": batches.hexdigest(),
        "batteries": batteries.hexdigest(),
        "declarations": declarations,
        "events": events,
    }


# --- counts ---------------------------------------------------------------------------------------------------


def test_minimum_counts(demo: Loaded, session: Session) -> None:
    s = demo.summary
    assert s.parks >= 10 and s.enterprises >= 300 and s.manifests >= 20_000 and s.batteries >= 2_000
    assert s.declarations >= 1_000 and s.battery_events > s.batteries and s.recovery_reports > 0
    tables = {
        "parks": "park",
        "enterprises": "enterprise",
        "roles": "enterprise_role",
        "licences": "licence",
        "whitelist_entries": "whitelist_entry",
        "declarations": "declaration",
        "manifests": "transfer_batch",
        "batteries": "battery",
        "battery_events": "battery_event",
        "recovery_reports": "recovery_report",
    }
    for name, table in tables.items():
        stored = session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        assert stored == getattr(s, name), name
    roles = set(session.exec(select(EnterpriseRoleLink.role)).all())
    assert roles == {r.value for r in EnterpriseRole}


def test_progress_reports_every_stage_to_completion(demo: Loaded) -> None:
    last: dict[str, tuple[int, int]] = {}
    for stage, done, total in demo.progress:
        assert 0 <= done <= total
        last[stage] = (done, total)
    assert {"parks", "enterprises", "manifests", "battery events"} <= set(last)
    assert all(done == total for done, total in last.values())


# --- geography and identities ---------------------------------------------------------------------------------


def test_every_enterprise_has_a_valid_uscc_and_lies_where_it_says(session: Session) -> None:
    enterprises = session.exec(select(Enterprise).order_by(col(Enterprise.id))).all()
    located = locate_many(session=session, points=[(e.lon, e.lat) for e in enterprises])
    for e, loc in zip(enterprises, located, strict=True):
        check = validate_uscc(e.uscc)
        assert check.ok, (e.uscc, check.reason)
        assert e.uscc[:2] == "91" and e.uscc[2:8] == e.county_adcode
        assert e.province_adcode == loc.province == "510000"
        assert (e.prefecture_adcode, e.county_adcode, e.park_id) == (loc.prefecture, loc.county, loc.park)
    assert len({e.name_zh for e in enterprises}) == len(enterprises)
    in_parks = sum(1 for e in enterprises if e.park_id is not None)
    assert in_parks > len(enterprises) / 3


def test_park_polygons_are_valid_and_inside_their_prefecture(session: Session) -> None:
    parks = session.exec(select(Park)).all()
    assert {p.level for p in parks} >= {"national", "provincial"}
    for park in parks:
        prefecture = session.get(Region, park.region_adcode)
        assert prefecture is not None and prefecture.level == "prefecture"
        assert park.boundary.is_valid and park.boundary.geom_type == "MultiPolygon"
        assert prefecture.geom.covers(park.boundary), park.name_zh
        area_km2 = park.boundary.area * 111.32 * 110.57 * 0.88  # cos(lat) ~ 0.88 in Sichuan
        assert 1 < area_km2 < 20, (park.name_zh, area_km2)
    others = [(p.name_zh, p.boundary) for p in parks]
    for i, (name, geom) in enumerate(others):
        assert all(not geom.intersects(g) for _n, g in others[i + 1 :]), name
    by_name = {p.name_zh: p for p in parks}
    assert by_name["攀枝花钒钛高新技术产业开发区"].region_adcode == "510400"
    assert by_name["四川什邡经济开发区"].region_adcode == "510600"
    assert by_name["宜宾临港经济技术开发区"].region_adcode == "511500"


# --- declarations and manifests -------------------------------------------------------------------------------


def test_declarations_obey_the_constraints_and_mostly_balance(session: Session) -> None:
    breaks = 0
    for d in session.exec(select(Declaration)).all():
        values = (d.generated_t, d.utilised_t, d.utilised_prior_t, d.disposed_t, d.disposed_prior_t, d.stored_t)
        assert min(*values, d.dumped_t) >= 0
        assert d.utilised_prior_t <= d.utilised_t and d.disposed_prior_t <= d.disposed_t
        balance = (d.utilised_t - d.utilised_prior_t) + d.stored_t + (d.disposed_t - d.disposed_prior_t) + d.dumped_t
        if abs(d.generated_t - balance) > 1.0:
            breaks += 1
    assert 1 <= breaks <= 20


def test_province_utilisation_rises_toward_the_target(session: Session) -> None:
    rates = []
    for year in range(2020, 2025):
        decls = session.exec(
            select(Declaration).where(
                Declaration.year == year,
                Declaration.category_code.in_(SICHUAN_TARGET_CATEGORIES),  # type: ignore[attr-defined]
            )
        ).all()
        rates.append(sum(d.utilised_t for d in decls) / sum(d.generated_t + d.utilised_prior_t for d in decls))
    assert rates == sorted(rates)
    assert 0.55 < rates[0] < 0.70 and 0.70 <= rates[-1] <= 0.78


def test_manifests_have_statuses_gaps_and_strays(session: Session) -> None:
    batches = session.exec(select(Manifest)).all()
    assert {b.status for b in batches} == {s.value for s in ManifestStatus}
    assert len({b.number for b in batches}) == len(batches)
    licensed = {(lic.enterprise_id, lic.category_code, lic.activity) for lic in session.exec(select(Licence)).all()}
    gaps = strays = 0
    for b in batches:
        assert b.shipper_id != b.receiver_id and b.weight_dispatched_t > 0
        assert b.number.startswith(f"SC{b.year}-")
        if b.status in (ManifestStatus.received, ManifestStatus.corrected):
            assert b.weight_received_t is not None and b.received_at is not None and b.dispatched_at is not None
            assert b.received_at > b.dispatched_at
            if abs(b.weight_received_t - b.weight_dispatched_t) > Decimal("0.02") * b.weight_dispatched_t:
                gaps += 1
        if b.status in (ManifestStatus.draft, ManifestStatus.cancelled):
            assert b.dispatched_at is None and b.weight_received_t is None
        if (
            b.route not in ("disposal", "storage", "transfer")
            and (
                b.receiver_id,
                b.category_code,
                "utilisation",
            )
            not in licensed
        ):
            strays += 1
    assert gaps >= 10 and strays >= 10
    assert strays < len(batches) * 0.05


def test_intermediaries_forward_with_and_without_sources(session: Session) -> None:
    batches = {b.id: b for b in session.exec(select(Manifest)).all()}
    sources = session.exec(select(ManifestSource)).all()
    named = [s for s in sources if s.weight_t is not None]
    assert named and len(named) < len(sources)  # tonnes named, and left to pro rata
    drawn: dict[int, Decimal] = defaultdict(Decimal)
    forwardings = {s.manifest_id for s in sources}
    for s in sources:
        lot, onward = batches[s.source_id], batches[s.manifest_id]
        assert lot.receiver_id == onward.shipper_id and lot.category_code == onward.category_code
        assert lot.route in ("storage", "transfer") and lot.weight_received_t is not None
        drawn[s.source_id] += s.weight_t or Decimal(0)
    for ident, tonnes in drawn.items():
        assert tonnes <= (batches[ident].weight_received_t or 0)
    # Two intermediaries in a row: a collector's forwarding that is itself a source of a pre-treatment plant's.
    assert forwardings & {s.source_id for s in sources}
    to_final = [batches[f] for f in forwardings if batches[f].route not in ("storage", "transfer")]
    assert to_final
    # Exactly one forwarding names no lot, and the audit flags it.
    intermediaries = {b.receiver_id for b in batches.values() if b.route in ("storage", "transfer")}
    unlinked = [
        b
        for b in batches.values()
        if b.shipper_id in intermediaries and b.id not in forwardings and b.route not in ("storage", "transfer")
    ]
    unlinked = [b for b in unlinked if b.shipper_id not in _generators(session)]
    assert len(unlinked) == 1
    page = list_flags(session=session, principal=system_principal(), kinds="unlinked_forwarding", limit=None)
    assert [f.evidence["number"] for f in page.data] == [unlinked[0].number]


def test_allocation_never_credits_a_generator_beyond_what_it_sent(session: Session) -> None:
    batches = {b.id: b for b in session.exec(select(Manifest)).all()}
    shares = session.exec(select(ManifestShare)).all()
    final: dict[int | None, int] = defaultdict(int)
    for share in shares:
        origin = batches[share.origin_id]
        assert share.origin_shipper_id == origin.shipper_id and share.category_code == origin.category_code
        final[share.origin_id] += share.kg
    for ident, kg in final.items():
        first = batches[ident]
        # A kilogram of a first manifest is at most in one place (a final step, held, or on the road), and
        # all of it is where it went straight to a final step; weighbridge gaps on later hops are lost.
        sent = int((first.weight_received_t or first.weight_dispatched_t) * 1000)
        assert kg == sent if first.route not in ("storage", "transfer") else kg <= sent, first.number
    # Some generator's waste reached a utiliser through an intermediary, and counts there.
    through = [
        s
        for s in shares
        if s.placement == "final"
        and s.manifest_id != s.origin_id
        and batches[s.origin_id].route in ("storage", "transfer")
    ]
    assert through


def test_handovers_are_recorded_on_dispatch(session: Session) -> None:
    batches = session.exec(select(Manifest)).all()
    for b in batches:
        if b.dispatched_at is None:
            assert b.transport_mode is None and b.vehicle_plate is None
        else:
            assert b.transport_mode is not None and b.weighing is not None and b.packaging
            assert (b.vehicle_plate is not None) == (b.transport_mode == "road")
            assert b.vehicle_plate is None or b.vehicle_plate.startswith("川")
    modes = {b.transport_mode for b in batches if b.transport_mode}
    assert {"road", "rail", "conveyor"} <= modes


def _generators(session: Session) -> set[int]:
    return set(
        session.exec(
            select(EnterpriseRoleLink.enterprise_id).where(EnterpriseRoleLink.role == EnterpriseRole.generator)
        ).all()
    )


# --- batteries ------------------------------------------------------------------------------------------------


def _events(session: Session) -> dict[int, list[BatteryEvent]]:
    chains: dict[int, list[BatteryEvent]] = defaultdict(list)
    for e in session.exec(
        select(BatteryEvent).order_by(col(BatteryEvent.battery_id), col(BatteryEvent.occurred_at))
    ).all():
        chains[e.battery_id].append(e)
    return chains


def test_battery_states_and_holders_match_their_last_event(session: Session) -> None:
    chains = _events(session)
    batteries = session.exec(select(Battery)).all()
    for bat in batteries:
        chain = chains[bat.id or 0]
        assert chain and chain[0].type == BatteryEventType.produced, bat.code
        state: str | None = None
        holder: int | None = None
        for e in chain:
            assert e.reported_at >= e.occurred_at
            assert e.type in NEXT[state] or e.type == BatteryEventType.transferred, (bat.code, state, e.type)
            if e.type == BatteryEventType.transferred:
                holder = e.counterpart_id
            else:
                state = e.type
                if e.type in (BatteryEventType.produced, BatteryEventType.collected):
                    holder = e.reporter_id
        assert bat.state == state and bat.holder_id == holder, bat.code
    assert {b.state for b in batteries} == {s.value for s in BatteryState}


def test_codes_parse_and_children_are_linked(session: Session) -> None:
    batteries = {b.id: b for b in session.exec(select(Battery)).all()}
    levels = {"pack": None, "module": "pack", "cell": "module"}
    for bat in batteries.values():
        decoded = parse_battery_code(bat.code)
        assert decoded.level == bat.level and decoded.chemistry == bat.chemistry
        if bat.original_code is None:
            assert decoded.production_date == bat.production_date and decoded.maker == bat.maker_code
        else:
            original = parse_battery_code(bat.original_code)
            assert original.level == bat.level and original.production_date == bat.production_date
        parent = batteries[bat.parent_id] if bat.parent_id else None
        assert (parent.level if parent else None) == levels[bat.level]
    levels_seen = {b.level for b in batteries.values()}
    assert levels_seen == {lv.value for lv in BatteryLevel}
    assert any(b.original_code for b in batteries.values())


def test_planted_battery_faults_are_there(session: Session) -> None:
    listed: dict[int, list[WhitelistEntry]] = defaultdict(list)
    for w in session.exec(select(WhitelistEntry)).all():
        listed[w.enterprise_id].append(w)
    takers = {
        link.enterprise_id
        for link in session.exec(select(EnterpriseRoleLink)).all()
        if link.role in (EnterpriseRole.cascade_user, EnterpriseRole.recycler)
    }
    assert takers - set(listed), "some cascade users or recyclers must be off the whitelist"

    def on_list(enterprise: int, when: datetime) -> bool:
        day = when.date()
        return any(w.listed_on <= day and (w.revoked_on is None or day < w.revoked_on) for w in listed[enterprise])

    chains = _events(session)
    leaks = lost = late = 0
    for chain in chains.values():
        for e in chain:
            if e.type == BatteryEventType.transferred and e.counterpart_id in takers:
                leaks += not on_list(e.counterpart_id, e.occurred_at)
            if e.reported_at - e.occurred_at > timedelta(days=60):
                late += 1
        last = [e for e in chain if e.type != BatteryEventType.transferred][-1]
        # Retired more than half a year before the demo's "now" and never collected.
        if last.type == BatteryEventType.retired and _naive_utc(last.occurred_at) < _naive_utc(
            DEMO_NOW - timedelta(days=180)
        ):
            lost += 1
    assert leaks >= 1 and lost >= 1 and late >= 1

    reports = session.exec(select(RecoveryReport)).all()
    below = [r for r in reports if r.lithium_in_kg and r.lithium_out_kg / r.lithium_in_kg < 0.9]
    impossible = [r for r in reports if r.lithium_out_kg > r.lithium_in_kg or r.electrode_powder_kg > r.input_mass_kg]
    assert below and impossible
    assert any(r.edition == "2024" for r in below)
    recovered = {b.id for b in session.exec(select(Battery).where(Battery.state == BatteryState.recovered)).all()}
    assert {r.battery_id for r in reports} == recovered


# --- determinism and refusal ----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows(demo: Loaded, session: Session, tmp_path: Path) -> None:
    again = _load(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    try:
        assert again.summary == demo.summary
        with Session(again.engine) as other:
            assert _fingerprint(other) == _fingerprint(session)
    finally:
        again.engine.dispose()


def test_loading_twice_is_refused(demo: Loaded) -> None:
    with Session(demo.engine) as session:
        with pytest.raises(Conflict) as info:
            load_demo(session=session)
        assert "already holds data" in info.value.message
        session.rollback()
        count = session.execute(text("SELECT count(*) FROM enterprise")).scalar()
    assert count == demo.summary.enterprises


# --- PostgreSQL + PostGIS -------------------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("CIRCUFLOW_TEST_POSTGRES_URL", "")


@pytest.mark.skipif(not PG_ADMIN_URL, reason="CIRCUFLOW_TEST_POSTGRES_URL is not set")
def test_postgresql_load_matches_sqlite(demo: Loaded, session: Session) -> None:
    admin_url = make_url(PG_ADMIN_URL)
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"cf_demo_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    loaded: Loaded | None = None
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        bootstrap = make_engine(url)
        with bootstrap.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        bootstrap.dispose()
        loaded = _load(url)
        assert loaded.summary == demo.summary
        with Session(loaded.engine) as pg:
            assert _fingerprint(pg) == _fingerprint(session)
            with pytest.raises(Conflict):
                load_demo(session=pg)
    finally:
        if loaded is not None:
            loaded.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
