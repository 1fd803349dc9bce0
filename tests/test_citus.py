"""A schema that distributes on Citus: keys that include the distribution column, and the rate pushed down to shards.

The first tests run on every backend: the migrations from 0019 on add one constraint per statement (Citus takes one
ADD per ALTER TABLE), the battery code table keeps codes unique, and the distribution plan read from a plain
PostgreSQL catalogue. The last part needs a Citus coordinator: set CIRCUFLOW_TEST_CITUS_URL to an administrative URL
of one (e.g. postgresql://postgres@127.0.0.1:5441/postgres) whose workers are registered with citus_add_node; it
makes a throwaway database on the coordinator and on every worker, runs the migrations unchanged, distributes, loads
the demo, and compares the rate by prefecture with the same demo on plain PostgreSQL (CIRCUFLOW_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.settings import normalise_database_url
from app.setup import upgrade_database
from flows.demo.load import load_demo
from flows.kernel import citus
from flows.kernel.principal import system_principal
from flows.pages.sankey import sankey
from flows.waste import numbers, rates, summaries
from migrations import alembic_config
from models import Battery, BatteryCode, Declaration, Manifest
from models.db import make_engine
from models.enums import BatteryLevel

CITUS_ADMIN_URL = os.environ.get("CIRCUFLOW_TEST_CITUS_URL", "")
PG_ADMIN_URL = os.environ.get("CIRCUFLOW_TEST_POSTGRES_URL", "")
NOW = datetime(2024, 5, 1, tzinfo=UTC)
# One worker takes these in turn: they share the cluster's nodes.
pytestmark = pytest.mark.xdist_group("citus")


def _adds(statement: str) -> int:
    return len(re.findall(r"\bADD\s+(CONSTRAINT|PRIMARY|UNIQUE|FOREIGN|CHECK)\b", statement, re.IGNORECASE))


def test_migrations_from_0019_add_one_constraint_per_statement(engine: Engine) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    seen: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0019")
    event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    altered = [s for s in seen if s.lstrip().upper().startswith("ALTER TABLE")]
    assert altered, "the walk ran no ALTER TABLE: the listener saw nothing"
    for statement in altered:
        assert _adds(statement) <= 1, statement
        assert not (_adds(statement) and re.search(r"\bDROP\b", statement, re.IGNORECASE)), statement


def _battery(code: str) -> Battery:
    return Battery(
        code=code, level=BatteryLevel.pack, maker_code="ABC", chemistry="A", production_date=date(2023, 1, 1)
    )


def test_the_code_table_keeps_battery_codes_unique(session: Session) -> None:
    first, second = _battery("001PACK0000000000000000001"), _battery("001PACK0000000000000000002")
    session.add_all([first, second])
    session.flush()
    assert first.id is not None and second.id is not None
    session.add(BatteryCode(code=first.code, battery_id=first.id))
    session.commit()
    # battery.code alone no longer refuses a second row: the code table does.
    session.add(BatteryCode(code=first.code, battery_id=second.id))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    assert session.exec(select(BatteryCode.battery_id).where(BatteryCode.code == first.code)).all() == [first.id]


def test_the_battery_writers_keep_the_code_table_in_step(session: Session) -> None:
    from tests.access_cases_battery import MODULE, PACK, build_chain, code
    from tests.test_battery import _life_to, _register
    from tests.world import build_world

    c = build_chain(session, build_world(session))
    pack, module = _register(session, c, {"code": PACK}, {"code": MODULE, "parent_code": PACK})
    assert module.parent_id == pack.id

    def codes() -> dict[str, int]:
        session.expire_all()
        return {r.code: r.battery_id for r in session.exec(select(BatteryCode)).all()}

    assert codes() == {PACK: pack.id, MODULE: module.id}
    _life_to(session, c, PACK, "repurposed")  # cascade use re-codes the pack: its old code is free again
    assert codes() == {code(BatteryLevel.pack, 500, maker="7C1"): pack.id, MODULE: module.id}


def test_a_declaration_is_found_by_its_key_with_the_enterprise(session: Session) -> None:
    from tests.world import build_world

    w = build_world(session)
    for decl_id, owner, other in ((w.decl_e1, w.e1, w.e3), (w.decl_e3, w.e3, w.e1)):
        found = session.get(Declaration, {"id": decl_id, "enterprise_id": owner})
        assert found is not None and (found.id, found.enterprise_id) == (decl_id, owner)
        assert session.get(Declaration, {"id": decl_id, "enterprise_id": other}) is None


def test_the_plan_on_plain_postgresql(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the plan reads PostgreSQL's catalogue")
    with engine.connect() as conn:
        steps = citus.plan(conn)
        assert not citus.is_citus(conn)
    statements = steps.statements
    made = [s for s in statements if s.startswith("SELECT create_")]
    # Reference tables before the tables whose foreign keys point at them; region first, flag_entry last.
    assert made[0] == "SELECT create_reference_table('region')"
    assert statements.index("SELECT create_reference_table('enterprise')") < statements.index(
        "SELECT create_distributed_table('declaration', 'enterprise_id', colocate_with => 'none')"
    )
    distributed = {d.table for d in steps.distributed}
    assert {"declaration", "battery_code"} <= distributed
    assert "audit_log" not in distributed and "audit_log" not in steps.reference
    # Every foreign key dropped around the distribution comes back, one ADD per statement, unless Citus cannot hold it.
    drops = [s for s in statements if " DROP CONSTRAINT " in s]
    adds = [s for s in statements if " ADD CONSTRAINT " in s]
    assert len(drops) == len(adds) + len(steps.dropped)
    assert all(_adds(s) == 1 for s in adds)
    # The manifests live with their shipper, co-located with the declarations; no table is left blocked.
    assert {"transfer_batch", "batch_correction"} <= distributed
    assert steps.blocked == {}
    made_batches = "SELECT create_distributed_table('transfer_batch', 'shipper_id', colocate_with => 'declaration')"
    assert made_batches in statements
    # The keys that cannot hold across shards are named with who checks instead.
    for name in ("fk_manifest_number_batch", "batch_correction_batch_id_fkey"):
        assert name in steps.dropped and "writer" in steps.dropped[name]


# ---------------------------------------------------------------------------------------------------------------
# On a Citus cluster


def _admin(url: str) -> Engine:
    return create_engine(normalise_database_url(url), isolation_level="AUTOCOMMIT")


def _url(admin_url: str, name: str, host: str | None = None, port: int | None = None) -> str:
    url = make_url(normalise_database_url(admin_url)).set(database=name)
    if host is not None:
        url = url.set(host=host, port=port)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def citus_url() -> Iterator[str]:
    """A throwaway database on the coordinator and every worker, with citus and PostGIS, the workers registered."""
    if not CITUS_ADMIN_URL:
        pytest.skip("CIRCUFLOW_TEST_CITUS_URL is not set (an administrative URL of a Citus coordinator)")
    if not PG_ADMIN_URL:
        pytest.skip("CIRCUFLOW_TEST_POSTGRES_URL is not set: the Citus figures are compared with plain PostgreSQL")
    name = f"circuflow_citus_{uuid.uuid4().hex[:8]}"
    admin = _admin(CITUS_ADMIN_URL)
    with admin.connect() as conn:
        workers = conn.execute(
            text("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'")
        ).all()
    if not workers:
        pytest.skip("the Citus coordinator has no workers (citus_add_node)")
    coordinator = make_url(normalise_database_url(CITUS_ADMIN_URL))
    nodes = [(coordinator.host, coordinator.port)] + [(h, p) for h, p in workers]
    for host, port in nodes:
        node = _admin(_url(CITUS_ADMIN_URL, "postgres", host, port))
        with node.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        node.dispose()
        db = _admin(_url(CITUS_ADMIN_URL, name, host, port))
        with db.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS citus"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        db.dispose()
    db = _admin(_url(CITUS_ADMIN_URL, name))
    with db.connect() as conn:
        conn.execute(text("SELECT citus_set_coordinator_host(:h, :p)"), {"h": coordinator.host, "p": coordinator.port})
        for host, port in workers:
            conn.execute(text("SELECT citus_add_node(:h, :p)"), {"h": host, "p": port})
    db.dispose()
    try:
        yield _url(CITUS_ADMIN_URL, name)
    finally:
        for host, port in nodes:
            node = _admin(_url(CITUS_ADMIN_URL, "postgres", host, port))
            with node.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            node.dispose()


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    """The same demo on plain PostgreSQL, to compare with."""
    name = f"circuflow_plain_{uuid.uuid4().hex[:8]}"
    admin = _admin(PG_ADMIN_URL)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _url(PG_ADMIN_URL, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _loaded(url: str, *, distribute: bool) -> Engine:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    upgrade_database(engine)  # the migrations, unchanged
    if distribute:
        with engine.begin() as conn:
            citus.distribute(conn)
    with Session(engine) as session:
        load_demo(session=session)
        session.commit()
    return engine


@pytest.fixture(scope="module")
def clusters(citus_url: str, plain_url: str) -> Iterator[tuple[Engine, Engine]]:
    on_citus, plain = _loaded(citus_url, distribute=True), _loaded(plain_url, distribute=False)
    yield on_citus, plain
    on_citus.dispose()
    plain.dispose()


def _rate_by_prefecture(engine: Engine, year: int) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with Session(engine) as session:
            report = rates.utilisation(session=session, principal=system_principal(), year=year, by="region")
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return report.model_dump(mode="json"), statements


def test_on_citus_the_tables_are_distributed_and_the_audit_log_stays(clusters: tuple[Engine, Engine]) -> None:
    on_citus, plain = clusters
    mirror = (
        "SELECT (SELECT count(*) FROM battery), (SELECT count(*) FROM battery_code),"
        " (SELECT count(*) FROM battery b JOIN battery_code c ON c.code = b.code AND c.battery_id = b.id)"
    )
    with plain.connect() as conn:
        batteries, codes, matched = conn.execute(text(mirror)).one()
    assert batteries > 0 and batteries == codes == matched  # the demo's batteries, each with its code row
    with on_citus.connect() as conn:
        kinds: dict[str, str] = dict(
            conn.execute(text("SELECT table_name::text, citus_table_type FROM citus_tables")).all()
        )
        nodes = conn.execute(
            text("SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'declaration'::regclass")
        )
        assert nodes.scalar() == 2
        triggers = conn.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal")
        ).scalar()
    assert kinds["declaration"] == kinds["battery_code"] == kinds["recovery_report"] == "distributed"
    assert kinds["transfer_batch"] == kinds["batch_correction"] == "distributed"
    assert kinds.get("manifest_number", "local") == "local"  # the numbers of every shard, on the coordinator
    assert kinds["enterprise"] == kinds["user_account"] == kinds["licence"] == "reference"
    assert "audit_log" not in kinds or kinds["audit_log"] == "local"  # on the coordinator
    assert triggers and triggers >= 1
    with on_citus.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(
            text(
                "INSERT INTO audit_log (at, channel, action, table_name, row_id, prev_hash, hash)"
                " VALUES (now(), 'cli', 'test', 'declaration', '1', '', '')"
            )
        )
        conn.execute(text("UPDATE audit_log SET action = 'edited'"))


def test_on_citus_the_rate_by_prefecture_is_pushed_down_and_equals_plain_postgresql(
    clusters: tuple[Engine, Engine],
) -> None:
    on_citus, plain = clusters
    with Session(plain) as session:
        year = session.exec(select(Declaration.year).order_by(Declaration.year.desc())).first()  # type: ignore[attr-defined]
    assert year is not None
    citus_report, statements = _rate_by_prefecture(on_citus, year)
    plain_report, _ = _rate_by_prefecture(plain, year)
    assert citus_report["rows"], "the demo's latest year has no rows by prefecture"
    assert citus_report == plain_report
    declared = [(s, p) for s, p in statements if "FROM declaration" in s and "GROUP BY" in s]
    assert declared, "the rate read no grouped declarations"
    with on_citus.connect() as conn:
        conn.execute(text("SET citus.explain_all_tasks = on"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + declared[0][0], declared[0][1]))
    assert "Custom Scan (Citus Adaptive)" in plan
    tasks = re.search(r"Task Count: (\d+)", plan)
    assert tasks and int(tasks.group(1)) > 1, plan
    ports = set(re.findall(r"port=(\d+)", plan))
    assert len(ports) == 2, plan  # the shards' tasks run on both workers


def test_on_citus_the_manifests_are_spread_and_their_numbers_stay_unique(clusters: tuple[Engine, Engine]) -> None:
    on_citus, plain = clusters
    with on_citus.connect() as conn:
        spread = conn.execute(
            text(
                "SELECT count(DISTINCT nodeport) FROM citus_shards"
                " WHERE table_name::text LIKE 'transfer_batch%' AND nodeport <> 5441"
            )
        ).scalar()
    assert spread == 2  # the manifests' shards sit on both workers
    with Session(on_citus) as session:
        taken = session.exec(select(Manifest).limit(1)).one()
        copy = Manifest.model_validate(
            {**taken.model_dump(exclude={"id", "idempotency_key"}), "receiver_id": taken.receiver_id}
        )
        session.add(copy)
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
    # A lookup by id reads the manifest's shipper and year from the number table, then one shard.
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        statements.append((statement, parameters))

    with Session(on_citus) as session:
        ident = session.exec(select(Manifest.id).limit(1)).one()
        event.listen(on_citus, "before_cursor_execute", keep)
        try:
            assert numbers.get(session, int(ident or 0)) is not None
        finally:
            event.remove(on_citus, "before_cursor_execute", keep)
        (read,) = [(sql, params) for sql, params in statements if "FROM transfer_batch" in sql]
        plan = "\n".join(str(r[0]) for r in session.connection().exec_driver_sql("EXPLAIN " + read[0], read[1]))
    assert "Task Count: 1" in plan, plan
    # Every summary equals the base rows, and the Sankey and the rate read on Citus equal plain PostgreSQL's.
    with Session(on_citus) as session:
        assert summaries.check(session) == []
    with Session(on_citus) as session, Session(plain) as other:
        year = session.exec(select(Declaration.year).order_by(Declaration.year.desc())).first()  # type: ignore[attr-defined]
        assert year is not None
        mine = sankey(session=session, principal=system_principal(), year=year)
        theirs = sankey(session=other, principal=system_principal(), year=year)
        assert (mine.total, mine.by_route, mine.by_place) == (theirs.total, theirs.by_route, theirs.by_place)
        assert mine.total.final_t > 0
