"""The sign-in throttle, atomic, per account and client address and per address; the last administrator stays.

Parallel attempts run on threads, each with its own session and connection (and through a real uvicorn server),
against a password hasher that counts its checks and takes its time, so that the attempts really overlap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from flows.access import accounts
from flows.kernel.errors import Conflict, NotAuthenticated, TooManyAttempts
from models import LoginFailure
from tests import browser
from tests.world import NOW, PASSWORD, build_world

ATTEMPTS = 20
HOME, ELSEWHERE = "192.0.2.10", "203.0.113.66"


class CountingHasher(PasswordHasher):
    """The suite's cheap argon2id, counting its checks and slowed down so that parallel attempts overlap."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)  # as tests/conftest.py
        self.checks = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:  # noqa: A002 - the library's own name
        with self._lock:
            self.checks += 1
        time.sleep(0.05)
        return super().verify(hash, password)


@pytest.fixture
def hasher() -> Iterator[CountingHasher]:
    counting = CountingHasher()
    accounts.use_password_hasher(counting)
    yield counting
    accounts.use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _attempt(engine: Engine, username: str, password: str, client: str) -> str:
    with Session(engine) as session:
        try:
            accounts.authenticate(session=session, username=username, password=password, client=client, now=NOW)
        except TooManyAttempts:
            return "throttled"
        except NotAuthenticated:
            return "refused"
        session.commit()
        return "signed in"


def _parallel(engine: Engine, username: str, password: str, client: str, n: int = ATTEMPTS) -> Counter[str]:
    start = threading.Barrier(n)

    def one(_: int) -> str:
        start.wait()
        return _attempt(engine, username, password, client)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(one, range(n)))


def test_parallel_wrong_passwords_get_exactly_the_limit(
    engine: Engine, session: Session, hasher: CountingHasher
) -> None:
    build_world(session, with_tokens=False)
    outcomes = _parallel(engine, "admin", "not the password", ELSEWHERE)
    assert outcomes == {"refused": accounts.THROTTLE_LIMIT, "throttled": ATTEMPTS - accounts.THROTTLE_LIMIT}
    assert hasher.checks == accounts.THROTTLE_LIMIT
    session.expire_all()
    stored = session.exec(select(LoginFailure).where(LoginFailure.username == "admin")).all()
    assert len(stored) == accounts.THROTTLE_LIMIT


def test_a_stranger_elsewhere_does_not_lock_the_administrator_out(
    engine: Engine, session: Session, hasher: CountingHasher
) -> None:
    build_world(session, with_tokens=False)
    for _ in range(accounts.THROTTLE_LIMIT):
        assert _attempt(engine, "admin", "guess", ELSEWHERE) == "refused"
    assert _attempt(engine, "admin", PASSWORD, ELSEWHERE) == "throttled"  # even the right password, from there
    assert _attempt(engine, "admin", PASSWORD, HOME) == "signed in"
    # The administrator's success does not clear what the stranger tried: they stay throttled where they are.
    assert _attempt(engine, "admin", "guess", ELSEWHERE) == "throttled"


def test_one_address_is_limited_across_accounts(engine: Engine, session: Session, hasher: CountingHasher) -> None:
    build_world(session, with_tokens=False)
    names = ["admin", "bureau_sc", "park_a", "ent1", "nobody"]  # an unknown name counts too
    per_name = accounts.ADDRESS_LIMIT // len(names)
    assert per_name < accounts.THROTTLE_LIMIT
    for name in names:
        for _ in range(per_name):
            assert _attempt(engine, name, "guess", ELSEWHERE) == "refused"
    checks = hasher.checks
    with pytest.raises(TooManyAttempts, match="from this address"), Session(engine) as s:
        accounts.authenticate(session=s, username="ent3", password=PASSWORD, client=ELSEWHERE, now=NOW)
    assert hasher.checks == checks  # refused before any password is checked
    assert _attempt(engine, "ent3", PASSWORD, HOME) == "signed in"
    # The window passes, and the address may try again.
    with Session(engine) as s:
        later = NOW + accounts.THROTTLE_WINDOW + timedelta(seconds=1)
        assert accounts.authenticate(session=s, username="ent3", password=PASSWORD, client=ELSEWHERE, now=later).id


def test_a_success_releases_its_reservation(engine: Engine, session: Session) -> None:
    build_world(session, with_tokens=False)
    for _ in range(accounts.THROTTLE_LIMIT - 1):
        assert _attempt(engine, "ent1", "typo", HOME) == "refused"
    assert _attempt(engine, "ent1", "typo", ELSEWHERE) == "refused"
    assert _attempt(engine, "ent1", PASSWORD, HOME) == "signed in"
    session.expire_all()
    left = session.exec(select(LoginFailure.client).where(col(LoginFailure.username) == "ent1")).all()
    assert left == [ELSEWHERE]
    # The count at home starts again: a full set of mistakes is allowed before the throttle.
    for _ in range(accounts.THROTTLE_LIMIT):
        assert _attempt(engine, "ent1", "typo", HOME) == "refused"
    assert _attempt(engine, "ent1", PASSWORD, HOME) == "throttled"


def _sign_in(base: str, username: str, password: str, address: str) -> int:
    # uvicorn takes the client address from X-Forwarded-For when the request comes from 127.0.0.1, as from a proxy.
    with httpx.Client(base_url=base, cookies={"circuflow_prelogin": "t"}, timeout=60) as http:
        response = http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": "t"},
            headers={"X-Forwarded-For": address},
            follow_redirects=False,
        )
    return response.status_code


def test_parallel_sign_ins_through_the_server(settings: Settings, session: Session, hasher: CountingHasher) -> None:
    build_world(session, with_tokens=False)
    with browser.serve(settings) as base:
        start = threading.Barrier(ATTEMPTS)

        def one(_: int) -> int:
            start.wait()
            return _sign_in(base, "admin", "not the password", ELSEWHERE)

        with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
            statuses = Counter(pool.map(one, range(ATTEMPTS)))
        assert statuses == {401: accounts.THROTTLE_LIMIT, 429: ATTEMPTS - accounts.THROTTLE_LIMIT}
        assert hasher.checks == accounts.THROTTLE_LIMIT
        assert _sign_in(base, "admin", PASSWORD, HOME) == 303


def test_the_last_active_administrator_cannot_be_disabled(
    client: TestClient, session: Session, cli_env: dict[str, str]
) -> None:
    w = build_world(session)
    admin = accounts.get_user(session=session, username="admin")
    with pytest.raises(Conflict, match="last active administrator"):
        accounts.set_active(session=session, user=admin, active=False, now=NOW)
    session.rollback()
    as_admin = {"Authorization": f"Bearer {w.tokens['admin']}"}
    refused = client.post("/api/v1/users/admin/disable", headers=as_admin)
    assert refused.status_code == 409 and "last active administrator" in refused.text
    result = CliRunner().invoke(cli, ["user", "disable", "admin"])
    assert result.exit_code == 1 and "last active administrator" in result.stderr
    session.expire_all()
    assert accounts.get_user(session=session, username="admin").is_active
    # With a second administrator either may go, but not both.
    accounts.create_user(session=session, username="admin2", password=PASSWORD, role="admin", now=NOW)
    session.commit()
    assert client.post("/api/v1/users/admin2/disable", headers=as_admin).status_code == 200
    refused = client.post("/api/v1/users/admin/disable", headers=as_admin)
    assert refused.status_code == 409
    # Other accounts are disabled as before.
    assert client.post("/api/v1/users/ent1/disable", headers=as_admin).status_code == 200
