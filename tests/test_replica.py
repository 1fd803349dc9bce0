"""A read replica: reads go to it, writes and the writer's own reads to the primary, and the primary when it is unfit.

The tests against a real streaming replica (tests/replica.py) run on PostgreSQL where scripts/replica.sh could start
one, and are skipped saying why elsewhere. The read-only tests run on both databases with the test's own database as
its "replica", opened read-only as a replica's sessions are: every read route must work there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.deps import SessionDep
from app.main import create_app
from app.replica import READ_APPLICATION, WROTE_COOKIE, read_engine_for
from app.settings import Settings, normalise_database_url
from models.db import make_engine
from tests import replica
from tests.access_cases import Case
from tests.access_cases_battery import seed_batteries
from tests.test_access_matrix import CASES, _prepare
from tests.world import PASSWORD, World, build_world

# One worker takes these in turn: they pause the one replica's replay, which the others would wait on.
pytestmark = pytest.mark.xdist_group("replica")

PROBE = "/test-replica-probe"


def app_with_probe(settings: Settings) -> FastAPI:
    """The app, plus a read route that says which server its session reads."""
    app = create_app(settings)

    @app.get(PROBE)
    def probe(session: SessionDep) -> dict[str, Any]:
        if session.get_bind().dialect.name != "postgresql":
            return {}
        in_recovery, application = session.execute(
            text("SELECT pg_is_in_recovery(), current_setting('application_name')")
        ).one()
        return {"in_recovery": in_recovery, "application": application}

    return app


def reading(settings: Settings, read_url: str, **more: Any) -> Settings:
    """The test's settings with a read replica."""
    return settings.model_copy(update={"read_database_url": normalise_database_url(read_url), **more})


@pytest.fixture
def replica_url(backend: str, db_url: str) -> str:
    """This test's database on the streaming replica, once its creation is replayed there."""
    if backend != "postgresql":
        pytest.skip("a streaming replica is PostgreSQL's")
    why = replica.unavailable()
    if why:
        pytest.skip(why)
    replica.wait_for_replay(db_url)
    return replica.on_replica(db_url)


def _token_names(client: TestClient, headers: dict[str, str]) -> set[str]:
    answer = client.get("/api/v1/tokens", headers=headers)
    assert answer.status_code == 200, answer.text
    return {row["name"] for row in answer.json()}


def _count(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_a_write_on_the_primary_appears_on_the_replica_once_replayed(
    replica_url: str, db_url: str, session: Session
) -> None:
    build_world(session)
    replica.wait_for_replay(db_url)
    counted = "SELECT count(*) FROM enterprise"
    before = _count(replica_url, counted)
    assert before == _count(db_url, counted) > 0
    with replica.replay_paused():
        session.execute(text("UPDATE enterprise SET name_zh = name_zh || ' (renamed)'"))
        session.execute(text("DELETE FROM api_token"))
        session.commit()
        replica.wait_for(replica.primary_lsn(db_url), position="receive")
        # Received but not applied: the replica still shows the rows as they were.
        assert _count(replica_url, "SELECT count(*) FROM api_token") > 0
    replica.wait_for_replay(db_url)
    assert _count(replica_url, "SELECT count(*) FROM api_token") == 0
    assert _count(replica_url, "SELECT count(*) FROM enterprise WHERE name_zh LIKE '% (renamed)'") == before


def test_the_replica_refuses_writes(replica_url: str) -> None:
    engine = make_engine(replica_url)
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"), engine.begin() as conn:
            conn.execute(text("DELETE FROM api_token"))
    finally:
        engine.dispose()


def test_reads_go_to_the_replica_and_a_writer_reads_its_own_writes(
    replica_url: str, db_url: str, settings: Settings, session: Session
) -> None:
    w = build_world(session)
    replica.wait_for_replay(db_url)
    admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    with TestClient(app_with_probe(reading(settings, replica_url, replica_max_lag_s=3600))) as client:
        assert client.get(PROBE).json() == {"in_recovery": True, "application": READ_APPLICATION}
        before = _token_names(client, admin)
        health = client.get("/healthz").json()
        assert health["replica"]["used"] is True and health["replica"]["state"] == "streaming"
        with replica.replay_paused():
            created = client.post("/api/v1/tokens", json={"name": "fresh"}, headers=admin)
            assert created.status_code == 201, created.text
            assert WROTE_COOKIE in client.cookies
            # The writer's next reads: the primary, where its write is.
            assert client.get(PROBE).json()["in_recovery"] is False
            assert _token_names(client, admin) == before | {"fresh"}
            # Anyone else (here: the same caller without the cookie) reads the replica, which has not replayed it.
            client.cookies.clear()
            assert client.get(PROBE).json()["in_recovery"] is True
            assert _token_names(client, admin) == before
        replica.wait_for_replay(db_url)
        assert _token_names(client, admin) == before | {"fresh"}
        # A forged cookie does not send reads to the primary.
        client.cookies.set(WROTE_COOKIE, "9999999999.forged")
        assert client.get(PROBE).json()["in_recovery"] is True


def test_the_page_after_a_form_post_reads_the_primary(replica_url: str, settings: Settings, session: Session) -> None:
    build_world(session, with_tokens=False)
    with TestClient(app_with_probe(reading(settings, replica_url, replica_max_lag_s=3600))) as client:
        form = client.get("/login")
        csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        with replica.replay_paused():
            signed_in = client.post(
                "/login",
                data={"username": "bureau_sc", "password": PASSWORD, "csrf_token": csrf, "next": "/"},
                follow_redirects=False,
            )
            assert signed_in.status_code == 303, signed_in.text[:300]
            assert client.get(PROBE).json()["in_recovery"] is False
            # The redirect's target, with the new session (which the replica has not replayed), answers.
            assert client.get("/").status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_replica_leaves_the_reads_to_the_primary(
    backend: str, db_url: str, settings: Settings, session: Session
) -> None:
    if backend != "postgresql":
        pytest.skip("an unreachable server is a PostgreSQL replica's failure")
    w = build_world(session)
    nowhere = make_url(db_url).set(port=free_port()).render_as_string(hide_password=False)
    with TestClient(app_with_probe(reading(settings, nowhere))) as client:
        assert client.get(PROBE).json()["in_recovery"] is False
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {w.tokens['admin']}"}).status_code == 200
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["replica"]["used"] is False
        assert health.json()["replica"]["state"].startswith("unreachable")


def _until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + replica.REPLAY_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {replica.REPLAY_TIMEOUT_S:g} s"
        time.sleep(0.1)


def test_a_lagging_replica_leaves_the_reads_to_the_primary(
    replica_url: str, db_url: str, settings: Settings, session: Session
) -> None:
    w = build_world(session)
    replica.wait_for_replay(db_url)
    # No lag allowed: on this shared machine the replica is behind now and then by what others write meanwhile.
    lagging = reading(settings, replica_url, replica_max_lag_s=0, replica_check_s=0.001)
    with TestClient(app_with_probe(lagging)) as client:

        def used() -> bool:
            return bool(client.get("/healthz").json()["replica"]["used"])

        def reads_replica() -> bool:
            return bool(used() and client.get(PROBE).json()["in_recovery"])

        _until("reading the replica", reads_replica)
        with replica.replay_paused():
            session.execute(text("DELETE FROM api_token WHERE user_id <> :admin"), {"admin": w.users["admin"]})
            session.commit()
            replica.wait_for(replica.primary_lsn(db_url), position="receive")
            # Received, not replayed: behind, whatever else happens meanwhile.
            health = client.get("/healthz").json()["replica"]
            assert health["used"] is False and health["state"].startswith("lagging"), health
            assert client.get(PROBE).json()["in_recovery"] is False
        replica.wait_for_replay(db_url)
        _until("reading the replica again", reads_replica)


# --- every read route on a read-only session (both databases) ---------------------------------------------------


def _seeded(case: Case) -> bool:
    return "seed" in case.extra


READ_CASES = [case for case in CASES if case.method == "GET"]


def _check_reads(client: TestClient, w: World, refs: dict[str, str], cases: list[Case]) -> None:
    failed: list[tuple[str, str, int, str]] = []
    for case in cases:
        url = case.url(w).format(**refs)
        for role in sorted(case.allowed):
            headers = {"Accept": "application/json"}
            if role != "anon":
                headers["Authorization"] = f"Bearer {w.tokens[role]}"
            client.cookies.clear()
            answer = client.get(url, headers=headers, follow_redirects=False)
            if not 200 <= answer.status_code < 400:
                failed.append((case.path, role, answer.status_code, answer.text[:200]))
    assert not failed, "\n".join(f"{path} as {role}: {status} {text}" for path, role, status, text in failed)


@pytest.fixture
def read_only_client(db_url: str, settings: Settings) -> Iterator[TestClient]:
    """The app with the test's own database as its replica, read-only as a replica is."""
    with TestClient(app_with_probe(reading(settings, db_url))) as client:
        yield client


def test_the_replica_engine_refuses_writes_even_on_a_primary(db_url: str, settings: Settings) -> None:
    engine = read_engine_for(reading(settings, db_url))
    try:
        with pytest.raises(DBAPIError, match="read-only|readonly"), engine.begin() as conn:
            conn.execute(text("DELETE FROM api_token"))
    finally:
        engine.dispose()


def test_every_read_route_answers_from_a_read_only_session(read_only_client: TestClient, session: Session) -> None:
    w = build_world(session)
    seed_batteries(session, w)
    refs = _prepare(read_only_client, w)
    _check_reads(read_only_client, w, refs, [case for case in READ_CASES if not _seeded(case)])


@pytest.mark.parametrize("case", [c for c in READ_CASES if _seeded(c)], ids=lambda c: f"{c.method} {c.path}")
def test_every_seeded_read_route_answers_from_a_read_only_session(
    case: Case, read_only_client: TestClient, session: Session
) -> None:
    w = build_world(session)
    refs = _prepare(read_only_client, w)
    refs.update(case.extra["seed"](session, w))
    _check_reads(read_only_client, w, refs, [case])


def test_writes_go_to_the_primary_beside_a_read_only_replica(
    read_only_client: TestClient, session: Session, db_url: str
) -> None:
    w = build_world(session)
    admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    created = read_only_client.post("/api/v1/tokens", json={"name": "written"}, headers=admin)
    assert created.status_code == 201, created.text
    assert _count(db_url, "SELECT count(*) FROM api_token WHERE name = 'written'") == 1
