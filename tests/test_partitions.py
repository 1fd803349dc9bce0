"""Years partitioned on PostgreSQL, and the manifest number table: the migration there and back with every row, key
and check; a year's query on one partition; DEFAULT's rows moved into their year; numbers unique across years."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from typer.testing import CliRunner

import migrations
from app.cli import cli
from app.setup import ensure_partitions_at_start
from flows.kernel import partitions as keeper
from flows.kernel.clock import CST
from flows.waste import numbers
from migrations import alembic_config
from models import Battery, BatteryEvent, Manifest, ManifestCorrection, ManifestNumber
from models import partitions as parts
from models.db import make_engine
from models.enums import BatteryEventType, BatteryLevel, ManifestStatus, Route
from tests.conftest import _pg_admin, _pg_url
from tests.test_chain_api import _moved, chain_world  # noqa: F401 - the fixture is used by name
from tests.world import NOW, World, t

# Every row the conversion touches, in a fixed order, as the database returns it.
TABLES = {
    "transfer_batch": "id",
    "manifest_source": "manifest_id, source_id",
    "manifest_draw": "manifest_id, source_id",
    "manifest_share": "manifest_id, origin_id, placement",
    "batch_correction": "id",
    "battery_event": "id",
}
SHAPED = (*TABLES, "manifest_number")


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY {key}"))]
            for name, key in TABLES.items()
        }


def _shape(engine: Engine) -> dict[str, Any]:
    """Keys, uniques, indexes and checks of the tables the migration rebuilds, as reflected."""
    found = inspect(engine)
    names = set(found.get_table_names())
    shape: dict[str, Any] = {}
    for table in SHAPED:
        if table not in names:
            continue
        shape[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            "pk": sorted(found.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in found.get_foreign_keys(table)
                if f["referred_schema"] != parts.SCHEMA
            ),
            "uniques": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in found.get_indexes(table)),
            "checks": sorted((c["name"], c["sqltext"]) for c in found.get_check_constraints(table)),
        }
    return shape


def _walk(engine: Engine, revision: str, *, down: bool) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


@pytest.fixture
def fresh_0019(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A database migrated only as far as the revision before 0022."""
    name = f"circuflow_p_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin() if backend == "postgresql" else None
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_url(name) if admin else f"sqlite:///{tmp_path / 'before.sqlite3'}")
    try:
        if admin is not None:
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        migrations.upgrade(engine, "0022-1")
        yield engine
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _battery(session: Session, maker: int) -> int:
    bat = Battery(
        code="X12CCPM27KLPCLE662382320",
        level=BatteryLevel.cell,
        maker_code="X12",
        chemistry="C",
        production_date=date(2023, 1, 5),
        holder_id=maker,
    )
    session.add(bat)
    session.flush()
    assert bat.id is not None
    return bat.id


def _event(session: Session, battery: int, reporter: int, at: datetime) -> None:
    session.add(
        BatteryEvent(
            battery_id=battery,
            type=BatteryEventType.produced,
            occurred_at=at,
            reported_at=at,
            reporter_id=reporter,
            attributes={},
        )
    )


def _manifest(session: Session, w: World, number: str, year: int) -> Manifest:
    # A received lot of 12.5 t, E1 to E2, dispatched on 1 March of its year.
    on = datetime(year, 3, 1, tzinfo=UTC)
    weight = t(12.5)
    parties: dict[str, Any] = {"shipper_id": w.e1, "receiver_id": w.e2, "category_code": "SW01"}
    batch = Manifest(number=number, year=year, weight_dispatched_t=weight, weight_received_t=weight, **parties)
    batch.route, batch.status, batch.created_at = Route.cement_admixture, ManifestStatus.received, on
    batch.dispatched_at, batch.received_at = on, on + timedelta(days=1)
    session.add(batch)
    session.flush()
    return batch


def test_the_migration_converts_a_database_with_data_and_back(
    client: TestClient,
    engine: Engine,
    session: Session,
    backend: str,
    chain_world: tuple[World, int, int],  # noqa: F811 - the fixture
    fresh_0019: Engine,
) -> None:
    w, collector, _plant = chain_world
    # A chain (sources, draws, shares), manifests of several years, a correction, events of several years.
    g1 = _moved(client, w, w.e1, collector, 100, "transfer")
    g2 = _moved(client, w, w.e3, collector, 50, "transfer")
    _moved(client, w, collector, w.e2, 120, "cement_admixture", sources=[{"number": g1["number"]}, {"id": g2["id"]}])
    for year in (2021, 2023, 2031):
        _manifest(session, w, f"T{year}-0000001", year)
    session.add(
        ManifestCorrection(
            batch_id=w.batch_received,
            shipper_id=w.e1,
            at=datetime(2024, 6, 1, tzinfo=UTC),
            reason="weighed again",
            before={"a": 1},
            after={"a": 2},
        )
    )
    battery = _battery(session, w.e1)
    for at in (
        datetime(2023, 2, 1, tzinfo=UTC),
        datetime(2024, 12, 31, 17, tzinfo=UTC),
        datetime(2025, 5, 1, tzinfo=UTC),
    ):
        _event(session, battery, w.e1, at)
    session.commit()
    session.close()
    at_head = _rows(engine)
    assert all(at_head[name] for name in TABLES), {name: len(rows) for name, rows in at_head.items()}
    # The rows as 0022 left them: the revisions after it may add columns of their own.
    _walk(engine, "0022", down=True)
    with_data = _rows(engine)
    assert {name: len(rows) for name, rows in with_data.items()} == {name: len(rows) for name, rows in at_head.items()}

    _walk(engine, "0022-1", down=True)
    assert _rows(engine) == with_data
    # Down gives the schema the revision before made, key for key.
    assert _shape(engine) == _shape(fresh_0019)
    with engine.connect() as conn:
        assert "manifest_number" not in inspect(conn).get_table_names()

    _walk(engine, "head", down=False)
    assert _rows(engine) == at_head
    with Session(engine) as fresh:
        numbered = {(n.number, n.manifest_id, n.year, n.shipper_id) for n in fresh.exec(select(ManifestNumber))}
        assert numbered == {(b.number, b.id, b.year, b.shipper_id) for b in fresh.exec(select(Manifest))}
        # The ids go on from where they were.
        newest = _manifest(fresh, w, "T2024-0000099", 2024)
        assert newest.id == max(row[0] for row in with_data["transfer_batch"]) + 1
        fresh.rollback()
    if backend == "postgresql":
        with engine.connect() as conn:
            placed: dict[str, str] = dict(
                conn.execute(text("SELECT number, tableoid::regclass::text FROM transfer_batch")).all()
            )
            held = conn.execute(
                text("SELECT tableoid::regclass::text, COUNT(*) FROM battery_event GROUP BY 1 ORDER BY 1")
            ).all()
        assert placed["T2021-0000001"] == f"{parts.SCHEMA}.transfer_batch_2021"
        assert placed["T2031-0000001"] == f"{parts.SCHEMA}.transfer_batch_2031"
        assert placed[g1["number"]] == f"{parts.SCHEMA}.transfer_batch_2024"
        # 2024-12-31 17:00 UTC is 2025 in Beijing: the bounds are Beijing year starts.
        assert held == [(f"{parts.SCHEMA}.battery_event_2023", 1), (f"{parts.SCHEMA}.battery_event_2025", 2)]


def _explain(session: Session, sql: str, **params: Any) -> str:
    plan = session.execute(text(f"EXPLAIN {sql}"), params).scalars().all()
    return "\n".join(str(line) for line in plan)


def test_a_years_query_touches_one_partition(session: Session, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL partitions its years; SQLite keeps plain tables")
    keeper.ensure(session=session, now=datetime(2024, 3, 1, tzinfo=UTC))
    session.commit()
    plan = _explain(
        session,
        "SELECT shipper_id, category_code, SUM(weight_received_kg) FROM transfer_batch"
        " WHERE year = :y AND status IN ('received', 'corrected') GROUP BY shipper_id, category_code",
        y=2024,
    )
    assert "transfer_batch_2024" in plan
    assert "transfer_batch_2025" not in plan and "transfer_batch_default" not in plan
    plan = _explain(
        session,
        "SELECT id FROM battery_event WHERE occurred_at >= :a AND occurred_at < :b",
        a=datetime(2024, 1, 1, tzinfo=CST),
        b=datetime(2025, 1, 1, tzinfo=CST),
    )
    assert "battery_event_2024" in plan
    assert "battery_event_2025" not in plan and "battery_event_default" not in plan


def test_a_lookup_by_id_reads_one_partition_by_the_number_tables_key(
    engine: Engine,
    backend: str,
    chain_world: tuple[World, int, int],  # noqa: F811
) -> None:
    w, _collector, _plant = chain_world
    with Session(engine) as session:
        if backend == "postgresql":
            keeper.ensure(session=session, now=datetime(2024, 3, 1, tzinfo=UTC))
        batch = _manifest(session, w, "T2024-0000888", 2024)
        session.commit()
        ident = batch.id
    assert ident is not None
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        statements.append((statement, parameters))

    with Session(engine) as session:
        event.listen(engine, "before_cursor_execute", keep)
        try:
            found = numbers.get(session, ident)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert found is not None and found.number == "T2024-0000888"
        read = [(sql, params) for sql, params in statements if "FROM transfer_batch" in sql]
        assert len(read) == 1 and "transfer_batch.year" in read[0][0] and "transfer_batch.shipper_id" in read[0][0]
        if backend == "postgresql":
            lines = session.connection().exec_driver_sql("EXPLAIN " + read[0][0], read[0][1])
            plan = "\n".join(str(line) for line in lines)
            assert "transfer_batch_2024" in plan and "transfer_batch_2025" not in plan and "default" not in plan, plan
        # A manifest without its number row (a write past the writers) is still found, by id alone.
        draft = Manifest(
            number="T2024-0000889", year=2024, shipper_id=w.e1, receiver_id=w.e2, category_code="SW01",
            route=Route.cement_admixture, status=ManifestStatus.draft, weight_dispatched_t=t(1), created_at=NOW,
        )  # fmt: skip
        session.add(draft)
        session.flush()
        session.execute(text("DELETE FROM manifest_number WHERE manifest_id = :i"), {"i": draft.id})
        again = numbers.get(session, draft.id or 0)
        assert again is not None and again.number == "T2024-0000889"
        session.rollback()


def test_a_year_without_partition_lands_in_default_and_moves_on_ensure(
    session: Session,
    backend: str,
    cli_env: dict[str, str],
    chain_world: tuple[World, int, int],  # noqa: F811
) -> None:
    w, _collector, _plant = chain_world
    far = 2061
    batch = _manifest(session, w, "T2061-0000001", far)
    battery = _battery(session, w.e1)
    _event(session, battery, w.e1, datetime(far, 7, 1, tzinfo=UTC))
    session.commit()
    session.add(
        ManifestCorrection(
            batch_id=batch.id or 0,
            shipper_id=batch.shipper_id,
            at=datetime(far, 7, 2, tzinfo=UTC),
            reason="checked",
            before={},
            after={},
        )
    )
    session.commit()
    ident = batch.id
    if backend == "postgresql":
        where = session.execute(text("SELECT tableoid::regclass::text FROM transfer_batch WHERE id = :i"), {"i": ident})
        assert where.scalar_one() == f"{parts.SCHEMA}.transfer_batch_default"
    session.close()
    result = CliRunner().invoke(cli, ["partitions", "ensure", "--ahead", "0"], env=cli_env)
    assert result.exit_code == 0, result.output
    if backend == "sqlite":
        assert "SQLite keeps plain tables" in result.output
    if backend == "postgresql":
        assert "transfer_batch: 2061 created, 1 rows moved from DEFAULT" in result.output
        assert "battery_event: 2061 created, 1 rows moved from DEFAULT" in result.output
        where = session.execute(text("SELECT tableoid::regclass::text FROM transfer_batch WHERE id = :i"), {"i": ident})
        assert where.scalar_one() == f"{parts.SCHEMA}.transfer_batch_2061"
        listed = CliRunner().invoke(cli, ["partitions", "list", "--json"], env=cli_env)
        assert listed.exit_code == 0, listed.output
        assert '"partition": "partitions.transfer_batch_2061", "year": 2061' in listed.output
        assert '"partition": "partitions.transfer_batch_default", "year": null, "rows": 0' in listed.output
        # Run again: nothing to do.
        again = CliRunner().invoke(cli, ["partitions", "ensure", "--ahead", "0"], env=cli_env)
        assert "every partition is there" in again.output
    # The manifest, its number, its correction and the event are all still there and still joined.
    stored = session.get(Manifest, ident)
    assert stored is not None and stored.year == far
    number = session.exec(select(ManifestNumber).where(ManifestNumber.manifest_id == ident)).one()
    assert (number.number, number.year) == ("T2061-0000001", far)
    assert session.exec(select(ManifestCorrection).where(ManifestCorrection.batch_id == ident)).one()
    assert session.exec(select(BatteryEvent).where(BatteryEvent.battery_id == battery)).one()


def test_numbers_are_unique_across_years(engine: Engine, chain_world: tuple[World, int, int]) -> None:  # noqa: F811
    w, _collector, _plant = chain_world
    with Session(engine) as session:
        _manifest(session, w, "T2024-0000777", 2024)
        session.commit()
    with pytest.raises(IntegrityError), Session(engine) as session:
        _manifest(session, w, "T2024-0000777", 2025)
    with pytest.raises(IntegrityError), Session(engine) as session:
        _manifest(session, w, "T2024-0000777", 2024)
    with Session(engine) as session:
        assert len(session.exec(select(Manifest).where(Manifest.number == "T2024-0000777")).all()) == 1


def test_a_manifest_that_changes_year_keeps_its_number(
    engine: Engine,
    chain_world: tuple[World, int, int],  # noqa: F811
) -> None:
    w, _collector, _plant = chain_world
    with Session(engine) as session:
        batch = _manifest(session, w, "T2024-0000555", 2024)
        session.commit()
        # A dispatch or a correction sets the year anew: the row moves to that year's partition, its number with it.
        batch.year = 2025
        session.add(batch)
        session.commit()
        number = session.exec(select(ManifestNumber).where(ManifestNumber.number == "T2024-0000555")).one()
        assert (number.manifest_id, number.year) == (batch.id, 2025)
    with pytest.raises(IntegrityError), Session(engine) as session:
        _manifest(session, w, "T2024-0000555", 2024)


def test_racing_inserts_of_one_number_in_two_years_leave_one(
    engine: Engine,
    backend: str,
    chain_world: tuple[World, int, int],  # noqa: F811
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    w, _collector, _plant = chain_world
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def insert(year: int) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                _manifest(session, w, "T2024-0000888", year)
                session.commit()
                outcomes.append("stored")
            except IntegrityError:
                outcomes.append("refused")

    threads = [threading.Thread(target=insert, args=(year,)) for year in (2024, 2026)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "stored"]


def test_a_server_start_makes_the_coming_years_but_leaves_defaults_rows_to_the_command(
    engine: Engine,
    backend: str,
    chain_world: tuple[World, int, int],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL partitions its years; SQLite keeps plain tables")
    w, _collector, _plant = chain_world
    with Session(engine) as session:
        _manifest(session, w, "T2062-0000001", 2062)
        session.execute(text(f"DROP TABLE {parts.EVENTS.name(datetime.now(CST).year + 2)}"))
        session.commit()
    with caplog.at_level(logging.WARNING, logger="circuflow"):
        ensure_partitions_at_start(engine)
    with Session(engine) as session:
        found = keeper.listing(session=session)
    assert datetime.now(CST).year + 2 in {p.year for p in found if p.table == "battery_event"}  # made again
    # Its row waits in DEFAULT: moving it is the command's.
    assert 2062 not in {p.year for p in found if p.table == "transfer_batch"}
    assert "transfer_batch: rows of [2024, 2062] wait in DEFAULT; run `circuflow partitions ensure`" in caplog.text
