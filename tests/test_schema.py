"""Constraints live in the database: they hold even for writes that bypass the Python models."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from flows.waste import numbers
from flows.waste.reference import SICHUAN_TARGET_CATEGORIES
from migrations import alembic_config
from models import Declaration, Enterprise, Manifest, Target, TargetCategory, WasteCategory, partitions

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _enterprise(session: Session, uscc: str = "91350100M000100Y43") -> int:
    e = Enterprise(uscc=uscc, name_zh="测试企业", lon=104.06, lat=30.66)
    session.add(e)
    session.flush()
    assert e.id is not None
    return e.id


def test_schema_is_owned_by_alembic(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"region", "park", "enterprise", "transfer_batch", "battery_event", "audit_log", "period_lock"} <= tables
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        # The migrations build exactly what the models describe: nothing missing, nothing extra.
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Did not recognize type 'geometry'")
            diff = [
                d
                for d in compare_metadata(context, SQLModel.metadata)
                if not _is_postgis_own(d) and not _is_partition_clone(d)
            ]
    assert diff == []


def _is_partition_clone(change: object) -> bool:
    # A key into a partitioned table has a copy per partition (PostgreSQL makes them, named apart), which SQLAlchemy
    # reflects as keys of their own: they name a table of the partitions schema.
    return (
        isinstance(change, tuple) and change[0] == "remove_fk" and change[1].referred_table.schema == partitions.SCHEMA
    )


def _is_postgis_own(change: object) -> bool:
    # PostGIS brings its own tables (spatial_ref_sys) and reports geometry columns under its own type; the GiST
    # indexes exist on PostgreSQL only, so the migration creates them and the models do not declare them.
    text_of = repr(change)
    return (
        "spatial_ref_sys" in text_of
        or ("modify_type" in text_of and "Geometry" in text_of)
        or "ix_park_boundary" in text_of
        or "ix_region_geom" in text_of
    )


def test_geometry_columns_are_postgis_with_gist(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostGIS only")
    with engine.connect() as conn:
        kinds: dict[str, str] = dict(
            conn.execute(
                text("SELECT f_table_name, type FROM geometry_columns WHERE srid = 4326 ORDER BY f_table_name")
            ).all()
        )
        indexes = conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")).all()
    assert kinds == {"park": "MULTIPOLYGON", "region": "MULTIPOLYGON"}
    assert {"ix_region_geom", "ix_park_boundary"} <= {r[0] for r in indexes}


def test_reference_categories_and_targets(session: Session) -> None:
    cats = {c.code: c for c in session.exec(select(WasteCategory)).all()}
    assert "SW08" not in cats
    assert cats["SW05"].is_tailings and cats["SW05"].is_bulk
    assert not any(c.is_tailings for code, c in cats.items() if code != "SW05")
    targets = {t.year: t for t in session.exec(select(Target)).all()}
    assert targets[2025].value == pytest.approx(0.78) and targets[2030].value == pytest.approx(0.82)
    for target in targets.values():
        codes = set(session.exec(select(TargetCategory.category_code).where(TargetCategory.target_id == target.id)))
        assert codes == set(SICHUAN_TARGET_CATEGORIES)
        assert "SW05" not in codes


@pytest.mark.parametrize(
    "column",
    ["generated_t", "utilised_t", "utilised_prior_t", "disposed_t", "disposed_prior_t", "stored_t", "dumped_t"],
)
def test_negative_declaration_weights_refused(engine: Engine, column: str) -> None:
    with Session(engine) as session:
        eid = _enterprise(session)
        session.commit()
    row = {"enterprise_id": eid, "category_code": "SW02", "year": 2023, column: -1.0}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Declaration), [row])
    with Session(engine) as session:
        assert session.exec(select(Declaration)).all() == []


def test_prior_year_stock_cannot_exceed_the_total(engine: Engine) -> None:
    with Session(engine) as session:
        eid = _enterprise(session)
        session.commit()
    row = {"enterprise_id": eid, "category_code": "SW02", "year": 2023, "utilised_t": 5.0, "utilised_prior_t": 6.0}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Declaration), [row])


def test_unknown_category_refused_by_foreign_key(engine: Engine) -> None:
    with Session(engine) as session:
        eid = _enterprise(session)
        session.commit()
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Declaration), [{"enterprise_id": eid, "category_code": "SW99", "year": 2023}])


def test_duplicate_credit_code_refused(engine: Engine) -> None:
    with Session(engine) as session:
        _enterprise(session)
        session.commit()
    with pytest.raises(IntegrityError), Session(engine) as session:
        _enterprise(session)


def test_batch_constraints(engine: Engine) -> None:
    with Session(engine) as session:
        a = _enterprise(session, "91350100M000100Y43")
        b = _enterprise(session, "91510400000000000X")
        session.commit()
    base = {
        "number": "SC2024-0000001",
        "shipper_id": a,
        "receiver_id": b,
        "category_code": "SW01",
        "route": "cement_admixture",
        "year": 2024,
        "status": "dispatched",
        "weight_dispatched_t": 30.0,
        "created_at": NOW,
    }
    bad_rows = [
        {**base, "weight_dispatched_t": -1.0},
        {**base, "weight_received_t": -0.5},
        {**base, "status": "lost"},
        {**base, "route": "river"},
        {**base, "receiver_id": a},
        {**base, "category_code": "SW08"},
    ]
    for bad in bad_rows:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(Manifest), [bad])
    with engine.begin() as conn:
        first = conn.execute(insert(Manifest).returning(col(Manifest.id)), [base]).scalar_one()
        numbers.record(conn, [int(str(first))])
    # The number is unique: held by the number table, which every manifest writer fills with the manifest.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        again = conn.execute(insert(Manifest).returning(col(Manifest.id)), [{**base, "weight_dispatched_t": 1.0}])
        numbers.record(conn, [int(str(again.scalar_one()))])


def test_battery_event_reported_before_it_happened_refused(engine: Engine) -> None:
    with Session(engine) as session:
        eid = _enterprise(session)
        session.commit()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO battery (code, level, maker_code, chemistry, production_date, state)"
                " VALUES ('X12CCPM27KLPCLE662382320', 'cell', 'X12', 'C', :d, 'produced')"
            ),
            {"d": date(2024, 6, 6)},
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO battery_event (battery_id, type, occurred_at, reported_at, reporter_id, attributes)"
                " VALUES (1, 'produced', :o, :r, :e, '{}')"
            ),
            {"o": NOW, "r": datetime(2024, 4, 1, tzinfo=UTC), "e": eid},
        )
